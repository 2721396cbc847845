package org.cardshield.virtualcard.gp;

import java.io.ByteArrayOutputStream;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;

/**
 * A GlobalPlatform Issuer Security Domain in front of jcardsim (GPCS v2.3 chapter 11):
 * SELECT, INITIALIZE UPDATE / EXTERNAL AUTHENTICATE (SCP02, SCP03 S8/S16), GET STATUS
 * (tagged and legacy), GET DATA, INSTALL [for load] (with the Load File Data Block Hash and
 * DAP verification), LOAD, INSTALL [for install and make selectable], DELETE, PUT KEY,
 * SET STATUS. How it behaves (AIDs, protocols, quirks of older cards) comes from its
 * {@link IsdProfile}.
 *
 * The host passes every APDU to {@link #process}; null means "not for the ISD", and the
 * host hands the APDU to the selected applet. Card state lives as long as this object.
 */
public final class IssuerSecurityDomain {
    static final byte[] TEST_KEY = LoadFile.hex("404142434445464748494A4B4C4D4E4F");
    static final byte[] GP_OID = LoadFile.hex("2A864886FC6B");
    static final int CARD_SECURED = 0x0F;   // GPCS 5.1.1
    static final int CARD_LOCKED = 0x7F;
    static final int APPLICATION_LOCKED = 0x80;  // GPCS 5.3.1.5: b8 of the application life cycle
    static final byte[] ISD_PRIVILEGES = {(byte) 0x9E, (byte) 0xFE, (byte) 0x80};
    /** CPLC IC fabricator "CS" and IC type "VC": how the CardShield tools recognise this card. */
    static final byte[] CPLC_MARKER = {0x43, 0x53, 0x56, 0x43};

    private final IsdProfile profile;
    private final byte[] isdAid;
    private final List<KeySet> keySets = new ArrayList<>();
    private final java.security.PublicKey dapKey;  // gp.isd.dap.publickey: DAP verification (GPCS C.2)
    private final int maxAuthFailures;
    private final int memoryCapacity;
    private final byte[] kdd;
    private final AppletCatalog catalog;
    private final AppletHost host;
    private final CardRegistry registry = new CardRegistry();
    private final SecureRandom random = new SecureRandom();

    private int cardLifeCycle = CARD_SECURED;
    private int authFailures;          // counted at INITIALIZE UPDATE, cleared by a good EXTERNAL AUTHENTICATE
    private boolean authBlocked;       // too many failures: no authentication ever again
    private int scp02Sequence;
    private int scp03Sequence;
    private boolean isdSelected = true; // the ISD is the default selected application after reset
    private CardSecureChannel channel;
    private boolean channelPending;     // INITIALIZE UPDATE done, EXTERNAL AUTHENTICATE expected
    private LoadInProgress load;
    private List<byte[]> statusRemainder;
    private boolean statusExhausted;   // gp211 quirk: every GET STATUS [next] now answers an empty 6310

    private static final class LoadInProgress {
        final byte[] loadFileAid;
        final byte[] hash;
        final ByteArrayOutputStream data = new ByteArrayOutputStream();
        int nextBlock;

        LoadInProgress(byte[] aid, byte[] hash) {
            this.loadFileAid = aid;
            this.hash = hash;
        }
    }

    IssuerSecurityDomain(Properties config, AppletCatalog catalog, AppletHost host) {
        this.profile = IsdProfile.named(config.getProperty("gp.isd.profile", "plain").trim());
        this.isdAid = config.containsKey("gp.isd.aid") ? LoadFile.hex(config.getProperty("gp.isd.aid").trim())
                : profile.isdAid;
        if (config.containsKey("gp.scp.default")) {
            profile.defaultScp = Integer.parseInt(config.getProperty("gp.scp.default").trim(), 16);
        }
        this.dapKey = config.containsKey("gp.isd.dap.publickey")
                ? GpCrypto.rsaPublicKey(LoadFile.hex(config.getProperty("gp.isd.dap.publickey").trim())) : null;
        this.maxAuthFailures = Integer.parseInt(config.getProperty("gp.auth.max_failures", "10"));
        this.memoryCapacity = Integer.parseInt(config.getProperty("gp.memory.bytes", "131072"));
        this.kdd = LoadFile.hex(config.getProperty("gp.kdd", "4353000000005643AB01"));
        this.catalog = catalog;
        this.host = host;
        keySets.addAll(profile.keySets);
        cardLifeCycle = profile.startsLocked ? CARD_LOCKED : CARD_SECURED;
    }

    /** An instance that exists from the start (pre-installed by the card's configuration). */
    void registerFactoryInstance(byte[] packageAid, byte[] moduleAid, byte[] instanceAid, byte[] privileges) {
        if (registry.loadFile(packageAid) == null) {
            List<byte[]> modules = new ArrayList<>();
            modules.add(moduleAid);
            registry.add(new CardRegistry.LoadFileEntry(packageAid, 1, 0, modules, false, 0));
        }
        byte[] full = privileges.length == 3 ? privileges : new byte[] {privileges.length > 0 ? privileges[0] : 0, 0, 0};
        registry.add(new CardRegistry.Application(instanceAid, packageAid, moduleAid, full, CardRegistry.SELECTABLE));
    }

    /** Power-on or reset: the session and any load in progress end; the ISD is selected. */
    public void reset() {
        closeSession();
        load = null;
        statusRemainder = null;
        isdSelected = true;
    }

    /** The response APDU (data + SW) if the ISD handles the command, else null. */
    public byte[] process(byte[] apdu) {
        boolean selectByName = apdu.length >= 4 && (apdu[0] & 0x80) == 0 && apdu[1] == (byte) 0xA4 && apdu[2] == 0x04;
        if (!selectByName && !isdSelected) {
            return null;  // for the selected applet, whatever its encoding (extended length included)
        }
        try {
            ShortApdu command;
            try {
                command = ShortApdu.parse(apdu);
                if ((command.cla & 0x80) != 0 && command.data.length > profile.commandDataLimit()) {
                    throw new StatusWordException(StatusWordException.SW_WRONG_LENGTH,
                            "command data longer than this card's 9F65 (" + profile.commandDataLimit() + ")");
                }
            } catch (StatusWordException e) {
                if (selectByName) {  // an extended-length SELECT never names the ISD: the applets decide
                    return selectOther(null);
                }
                throw e;
            }
            if (selectByName) {
                return select(command);
            }
            if ((command.cla & 0x03) != 0) {
                throw new StatusWordException(StatusWordException.SW_LOGICAL_CHANNEL_NOT_SUPPORTED,
                        "the ISD answers on the basic channel only");
            }
            return ok(dispatch(command));
        } catch (MoreData e) {
            return GpCrypto.concat(e.data, sw(e.sw));
        } catch (StatusWordException e) {
            return sw(e.sw);
        }
    }

    private static byte[] sw(int sw) {
        return new byte[] {(byte) (sw >> 8), (byte) sw};
    }

    private static byte[] ok(byte[] data) {
        return GpCrypto.concat(data, sw(0x9000));
    }

    private boolean isIsdAid(byte[] aid) {
        // SELECT by DF name with a partial AID matches (ISO 7816-4 11.2.2.2); empty selects the ISD
        return aid.length == 0 || (aid.length >= 5 && aid.length <= isdAid.length
                && Arrays.equals(aid, Arrays.copyOf(isdAid, aid.length)));
    }

    private byte[] select(ShortApdu command) {
        if (command.p2 != 0x00 && command.p2 != 0x0C && command.p2 != 0x02) {
            return isdSelected ? sw(StatusWordException.SW_INCORRECT_P1P2) : null;
        }
        if (!isIsdAid(command.data)) {
            return selectOther(command.data);
        }
        isdSelected = true;
        closeSession();
        load = null;
        // GPCS 11.9.3.2: selecting the ISD of a CARD_LOCKED card succeeds with warning 6283
        int status = cardLifeCycle == CARD_LOCKED ? 0x6283 : 0x9000;
        if (command.p2 == 0x0C) {
            return sw(status);
        }
        byte[] proprietary = Tlv.of(0x73, cardRecognitionData());
        if (profile.maxCommandData >= 0) {  // GPCS 11.9.3.1: maximum length of data field in command message
            proprietary = GpCrypto.concat(proprietary, Tlv.of(0x9F65, new byte[] {(byte) profile.maxCommandData}));
        }
        return GpCrypto.concat(Tlv.of(0x6F, Tlv.of(0x84, isdAid), Tlv.of(0xA5, proprietary)), sw(status));
    }

    /** SELECT of another application: the applet runtime answers it (null), unless the card is locked. */
    private byte[] selectOther(byte[] aid) {
        if (cardLifeCycle == CARD_LOCKED) {
            return sw(StatusWordException.SW_NOT_FOUND);  // GPCS 5.1.1.4: only the ISD is selectable
        }
        CardRegistry.Application app = aid == null ? null : registry.application(aid);
        if (app != null && (app.lifeCycle & APPLICATION_LOCKED) != 0) {
            return sw(StatusWordException.SW_NOT_FOUND);  // GPCS 5.3.1.5: a LOCKED application is not selectable
        }
        isdSelected = false;
        closeSession();
        load = null;
        return null;
    }

    private void closeSession() {
        channel = null;
        channelPending = false;
    }

    private byte[] dispatch(ShortApdu command) {
        switch (command.ins) {
            case 0xCA:
                return getData(unwrapIfSecure(command));
            case 0x50:
                requireGp(command);
                return initializeUpdate(command);
            case 0x82:
                requireGp(command);
                return externalAuthenticate(command);
            case 0xF2:
                requireGp(command);
                return getStatus(authenticated(command));
            case 0xE6:
                requireGp(command);
                return install(authenticated(command));
            case 0xE8:
                requireGp(command);
                return loadBlock(authenticated(command));
            case 0xE4:
                requireGp(command);
                return delete(authenticated(command));
            case 0xD8:
                requireGp(command);
                return putKey(authenticated(command));
            case 0xF0:
                requireGp(command);
                return setStatus(authenticated(command));
            case 0xC0:
                throw new StatusWordException(StatusWordException.SW_CONDITIONS_OF_USE, "no response data pending");
            default:
                throw new StatusWordException(StatusWordException.SW_INS_NOT_SUPPORTED, "instruction not supported");
        }
    }

    private static void requireGp(ShortApdu command) {
        if ((command.cla & 0x80) == 0) {
            throw new StatusWordException(StatusWordException.SW_CLA_NOT_SUPPORTED, "GlobalPlatform commands use CLA 80/84");
        }
    }

    private ShortApdu unwrapIfSecure(ShortApdu command) {
        if (channel != null && channel.authenticated()) {
            return unwrapOrClose(command);
        }
        return command;
    }

    private ShortApdu unwrapOrClose(ShortApdu command) {
        try {
            return channel.unwrap(command);
        } catch (StatusWordException e) {
            closeSession();  // GPCS 10.2.3: a security error ends the session
            throw e;
        }
    }

    private ShortApdu authenticated(ShortApdu command) {
        if (channel == null || !channel.authenticated()) {
            throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "no authenticated secure channel");
        }
        return unwrapOrClose(command);
    }

    // ---------------------------------------------------------------- secure channel

    private byte[] initializeUpdate(ShortApdu command) {
        closeSession();
        if (authBlocked) {
            throw new StatusWordException(StatusWordException.SW_AUTH_METHOD_BLOCKED, "card locked");
        }
        KeySet keys = null;
        for (KeySet k : keySets) {
            if (command.p1 == k.version || (command.p1 == 0 && k.scp == profile.defaultScp)
                    || profile.ignoresKeyVersion) {
                keys = k;
            }
        }
        if (keys == null) {
            throw new StatusWordException(StatusWordException.SW_REFERENCED_DATA_NOT_FOUND,
                    "no key set with version " + Integer.toHexString(command.p1));
        }
        int challenge = keys.scp == 0x03 ? Scp03CardSession.challengeLength(keys) : 8;
        if (command.data.length != challenge) {
            throw new StatusWordException(StatusWordException.SW_WRONG_LENGTH, "host challenge is " + challenge + " bytes");
        }
        // The attempt counts until EXTERNAL AUTHENTICATE succeeds, as on real cards
        authFailures++;
        if (authFailures > maxAuthFailures) {
            authBlocked = true;
            cardLifeCycle = CARD_LOCKED;
            throw new StatusWordException(StatusWordException.SW_AUTH_METHOD_BLOCKED,
                    "too many failed authentications: card locked");
        }
        if (keys.scp == 0x02) {
            channel = new Scp02CardSession(keys, kdd, command.data, scp02Sequence, random);
        } else {
            scp03Sequence++;
            channel = new Scp03CardSession(keys, kdd, command.data, scp03Sequence, isdAid);
        }
        channelPending = true;
        return channel.initializeUpdateResponse();
    }

    private byte[] externalAuthenticate(ShortApdu command) {
        if (channel == null || !channelPending) {
            throw new StatusWordException(StatusWordException.SW_CONDITIONS_OF_USE, "INITIALIZE UPDATE first");
        }
        CardSecureChannel pending = channel;
        closeSession();
        pending.externalAuthenticate(command);
        authFailures = 0;
        if (pending instanceof Scp02CardSession) {
            scp02Sequence = (scp02Sequence + 1) & 0xFFFF;
        }
        channel = pending;
        return new byte[0];
    }

    // ---------------------------------------------------------------- GET DATA

    private byte[] cardRecognitionData() {
        byte[] oidPrefix = GP_OID;
        return GpCrypto.concat(
                Tlv.of(0x06, GpCrypto.concat(oidPrefix, new byte[] {0x01})),
                Tlv.of(0x60, Tlv.of(0x06, GpCrypto.concat(oidPrefix, gpVersionArcs()))),
                Tlv.of(0x63, Tlv.of(0x06, GpCrypto.concat(oidPrefix, new byte[] {0x03}))),
                secureChannelProtocols());
    }

    private byte[] gpVersionArcs() {
        String[] parts = profile.gpVersion.split("\\.");
        byte[] arcs = new byte[parts.length + 1];
        arcs[0] = 0x02;
        for (int i = 0; i < parts.length; i++) {
            arcs[i + 1] = (byte) Integer.parseInt(parts[i]);
        }
        return arcs;
    }

    /** One 64 template per protocol and i parameter the key sets use (GPCS H.2). */
    private byte[] secureChannelProtocols() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        java.util.Set<Integer> seen = new java.util.LinkedHashSet<>();
        for (KeySet k : keySets) {
            if (seen.add((k.scp << 8) | k.i)) {
                byte[] t = Tlv.of(0x64, Tlv.of(0x06, GpCrypto.concat(GP_OID, new byte[] {0x04, (byte) k.scp, (byte) k.i})));
                out.write(t, 0, t.length);
            }
        }
        return out.toByteArray();
    }

    private byte[] cplc() {
        byte[] cplc = new byte[42];
        System.arraycopy(CPLC_MARKER, 0, cplc, 0, 4);        // IC fabricator, IC type
        cplc[4] = 0x4A;                                       // OS ID "JS" (jcardsim)
        cplc[5] = 0x53;
        System.arraycopy(kdd, 4, cplc, 12, 4);                // IC serial number
        return Tlv.of(0x9F7F, cplc);
    }

    private byte[] getData(ShortApdu command) {
        int tag = (command.p1 << 8) | command.p2;
        switch (tag) {
            case 0x0066:
                return Tlv.of(0x66, Tlv.of(0x73, cardRecognitionData()));
            case 0x9F7F:
                return cplc();
            case 0x00E0: {
                ByteArrayOutputStream info = new ByteArrayOutputStream();
                for (KeySet k : keySets) {
                    byte[] b = k.keyInformation();
                    info.write(b, 0, b.length);
                }
                return Tlv.of(0xE0, info.toByteArray());
            }
            case 0x004F:
                return Tlv.of(0x4F, isdAid);
            default:
                throw new StatusWordException(StatusWordException.SW_REFERENCED_DATA_NOT_FOUND,
                        "no data object " + Integer.toHexString(tag));
        }
    }

    // ---------------------------------------------------------------- GET STATUS

    private byte[] getStatus(ShortApdu command) {
        // P2 b2: tagged (GP 2.2+) or legacy format (GPCS 11.4.2.2); b1: next occurrence
        boolean tagged = (command.p2 & 0x02) != 0;
        if ((command.p2 & ~0x03) != 0 || (tagged && !profile.taggedStatus)) {
            throw new StatusWordException(StatusWordException.SW_INCORRECT_P1P2, "GET STATUS P2 not supported");
        }
        if ((command.p2 & 0x01) != 0) {
            if (statusExhausted) {  // gp211 firmware bug: "more data", but none
                throw new MoreData(new byte[0]);
            }
            if (statusRemainder == null) {
                throw new StatusWordException(StatusWordException.SW_CONDITIONS_OF_USE, "no GET STATUS in progress");
            }
            return pageStatus(statusRemainder);
        }
        statusExhausted = false;
        byte[] prefix = Tlv.find(command.data, 0x4F);
        if (prefix == null) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "search criteria need tag 4F");
        }
        List<byte[]> entries = new ArrayList<>();
        switch (command.p1) {
            case 0x80:
                if (matches(isdAid, prefix)) {
                    entries.add(entry(tagged, isdAid, cardLifeCycle, ISD_PRIVILEGES, null, null, null));
                }
                break;
            case 0x40:
                for (CardRegistry.Application app : registry.applications.values()) {
                    if (matches(app.aid, prefix)) {
                        entries.add(entry(tagged, app.aid, app.lifeCycle, app.privileges, app.loadFileAid, null, null));
                    }
                }
                break;
            case 0x10:
                if (!profile.statusP1Modules) {
                    throw new StatusWordException(StatusWordException.SW_INCORRECT_P1P2, "GET STATUS P1 10 not supported");
                }
                // fall through
            case 0x20:
                for (CardRegistry.LoadFileEntry elf : registry.loadFiles.values()) {
                    if (matches(elf.aid, prefix)) {
                        entries.add(entry(tagged, elf.aid, CardRegistry.LOADED, null, null,
                                new byte[] {(byte) elf.major, (byte) elf.minor},
                                command.p1 == 0x10 ? elf.modules : null));
                    }
                }
                break;
            default:
                throw new StatusWordException(StatusWordException.SW_INCORRECT_P1P2, "GET STATUS P1 80, 40, 20 or 10");
        }
        if (entries.isEmpty()) {
            throw new StatusWordException(StatusWordException.SW_REFERENCED_DATA_NOT_FOUND, "no matching entry");
        }
        return pageStatus(entries);
    }

    /** Returns the entries that fit one response; the rest waits for GET STATUS [next] behind SW 6310 (GPCS 11.4.3). */
    private byte[] pageStatus(List<byte[]> remaining) {
        statusRemainder = null;
        ByteArrayOutputStream page = new ByteArrayOutputStream();
        int taken = 0;
        while (taken < remaining.size() && page.size() + remaining.get(taken).length <= 240) {
            page.write(remaining.get(taken), 0, remaining.get(taken).length);
            taken++;
        }
        if (taken == remaining.size()) {
            if (profile.emptyMoreDataBug) {
                statusExhausted = true;
                throw new MoreData(page.toByteArray());
            }
            return page.toByteArray();
        }
        statusRemainder = new ArrayList<>(remaining.subList(taken, remaining.size()));
        throw new MoreData(page.toByteArray());
    }

    private static boolean matches(byte[] aid, byte[] prefix) {
        return prefix.length <= aid.length && Arrays.equals(prefix, Arrays.copyOf(aid, prefix.length));
    }

    private byte[] entry(boolean tagged, byte[] aid, int lifeCycle, byte[] privileges, byte[] elf, byte[] version,
                         List<byte[]> modules) {
        if (!tagged) {  // GPCS 11.4.3.1 legacy format: AID, life cycle, privileges (1 byte)[, modules]
            ByteArrayOutputStream e = new ByteArrayOutputStream();
            byte[] head = GpCrypto.concat(new byte[] {(byte) aid.length}, aid,
                    new byte[] {(byte) lifeCycle, privileges == null ? 0 : privileges[0]});
            e.write(head, 0, head.length);
            if (modules != null) {
                e.write(modules.size());
                for (byte[] m : modules) {
                    e.write(m.length);
                    e.write(m, 0, m.length);
                }
            }
            return e.toByteArray();
        }
        ByteArrayOutputStream e = new ByteArrayOutputStream();
        byte[][] parts = {Tlv.of(0x4F, aid), Tlv.of(0x9F70, new byte[] {(byte) lifeCycle}),
                privileges == null ? new byte[0] : Tlv.of(0xC5, privileges),
                elf == null ? new byte[0] : Tlv.of(0xC4, elf),
                version == null ? new byte[0] : Tlv.of(0xCE, version),
                Tlv.of(0xCC, isdAid)};
        for (byte[] p : parts) {
            e.write(p, 0, p.length);
        }
        if (modules != null) {
            for (byte[] m : modules) {
                byte[] t = Tlv.of(0x84, m);
                e.write(t, 0, t.length);
            }
        }
        return Tlv.of(0xE3, e.toByteArray());
    }

    /** 6310 "more data available" carrying data (GPCS 11.4.3). */
    static final class MoreData extends StatusWordException {
        private static final long serialVersionUID = 1L;
        final byte[] data;

        MoreData(byte[] data) {
            super(0x6310, "more data");
            this.data = data;
        }
    }

    // ---------------------------------------------------------------- INSTALL / LOAD / DELETE

    private byte[] install(ShortApdu command) {
        Tlv.LengthValueReader r = new Tlv.LengthValueReader(command.data);
        switch (command.p1) {
            case 0x02:
                return installForLoad(r);
            case 0x0C:
                return installForInstall(r);
            default:
                throw new StatusWordException(StatusWordException.SW_INCORRECT_P1P2,
                        "INSTALL P1 02 (for load) or 0C (for install and make selectable)");
        }
    }

    private byte[] installForLoad(Tlv.LengthValueReader r) {
        byte[] elf = r.aid();
        byte[] sd = r.next();
        byte[] hash = r.next();  // Load File Data Block Hash (GPCS 11.5.2.3.2)
        byte[] params = r.next();
        r.next();  // token
        if (sd.length != 0 && !Arrays.equals(sd, isdAid)) {
            throw new StatusWordException(StatusWordException.SW_REFERENCED_DATA_NOT_FOUND, "unknown security domain");
        }
        if (registry.loadFile(elf) != null) {
            throw new StatusWordException(StatusWordException.SW_CONDITIONS_OF_USE, "load file already on the card");
        }
        byte[] limits = Tlv.find(Tlv.findOrEmpty(params, 0xEF), 0xC6);  // non-volatile code space (GPCS 11.5.2.3.7)
        if (limits != null && new java.math.BigInteger(1, limits).intValue() > freeMemory()) {
            throw new StatusWordException(StatusWordException.SW_NOT_ENOUGH_MEMORY, "not enough memory");
        }
        if (hash.length != 0 && hash.length != 32) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "this card hashes load files with SHA-256");
        }
        if (hash.length == 0 && (profile.requiresLoadFileHash || dapKey != null)) {
            // a security domain with DAP verification or Delegated Management needs the hash (GPCS 9.3.5)
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "Load File Data Block Hash required");
        }
        load = new LoadInProgress(elf, hash.length == 0 ? null : hash);
        return new byte[] {0x00};
    }

    private int freeMemory() {
        int used = 0;
        for (CardRegistry.LoadFileEntry e : registry.loadFiles.values()) {
            used += e.size;
        }
        return memoryCapacity - used;
    }

    private byte[] loadBlock(ShortApdu command) {
        if (load == null) {
            throw new StatusWordException(StatusWordException.SW_CONDITIONS_OF_USE, "INSTALL [for load] first");
        }
        if (command.p2 != (load.nextBlock & 0xFF) || (command.p1 != 0x00 && command.p1 != 0x80)) {
            load = null;  // a block out of sequence aborts the load (GPCS 11.6.2.2)
            throw new StatusWordException(StatusWordException.SW_INCORRECT_P1P2, "LOAD block out of sequence");
        }
        load.data.write(command.data, 0, command.data.length);
        load.nextBlock++;
        if (load.data.size() > freeMemory()) {
            load = null;
            throw new StatusWordException(StatusWordException.SW_NOT_ENOUGH_MEMORY, "not enough memory");
        }
        if (command.p1 == 0x00) {
            return new byte[0];
        }
        LoadInProgress done = load;
        load = null;
        byte[] dataBlock = verifyDap(done);
        LoadFile file = LoadFile.parse(dataBlock);
        if (!Arrays.equals(file.packageAid, done.loadFileAid)) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA,
                    "package AID in the Header differs from INSTALL [for load]");
        }
        if (!catalog.knowsPackage(file.packageAid)) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA,
                    "no classes for this package on the virtual card's classpath");
        }
        registry.add(new CardRegistry.LoadFileEntry(file.packageAid, file.packageMajor, file.packageMinor,
                file.appletAids, file.development, file.size));
        return new byte[] {0x00};
    }

    /**
     * Splits the received Load File into DAP blocks (E2) and the Load File Data Block (C4),
     * checks the block's SHA-256 against INSTALL [for load] and, with a DAP key, the DAP
     * signature (RSA PKCS#1 v1.5 with SHA-256 over the hash, GPCS C.2). Returns the C4 TLV.
     */
    private byte[] verifyDap(LoadInProgress done) {
        byte[] all = done.data.toByteArray();
        byte[] signature = null;
        int pos = 0;
        while (pos < all.length && (all[pos] & 0xFF) == 0xE2) {
            int end = Tlv.end(all, pos);
            byte[] block = Tlv.find(Arrays.copyOfRange(all, pos, end), 0xE2);
            if (Arrays.equals(Tlv.find(block, 0x4F), isdAid)) {
                signature = Tlv.find(block, 0xC3);
            }
            pos = end;
        }
        byte[] dataBlock = Arrays.copyOfRange(all, pos, all.length);
        if (done.hash == null) {
            if (dapKey != null) {
                throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "DAP verification needs the hash");
            }
            return dataBlock;
        }
        byte[] c4Value = Tlv.find(dataBlock, 0xC4);
        if (c4Value == null || !GpCrypto.equal(GpCrypto.sha256(c4Value), done.hash)) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA,
                    "Load File Data Block Hash does not match the loaded data");
        }
        if (dapKey != null && (signature == null || !GpCrypto.rsaVerify(dapKey, done.hash, signature))) {
            throw new StatusWordException(StatusWordException.SW_SECURITY_STATUS, "DAP verification failed");
        }
        return dataBlock;
    }

    private byte[] installForInstall(Tlv.LengthValueReader r) {
        byte[] elfAid = r.aid();
        byte[] moduleAid = r.aid();
        byte[] instanceAid = r.aid();
        byte[] privileges = r.next();
        byte[] params = r.next();
        r.next();  // token
        CardRegistry.LoadFileEntry elf = registry.loadFile(elfAid);
        if (elf == null) {
            throw new StatusWordException(StatusWordException.SW_REFERENCED_DATA_NOT_FOUND, "load file not on the card");
        }
        boolean moduleFound = false;
        for (byte[] m : elf.modules) {
            moduleFound |= Arrays.equals(m, moduleAid);
        }
        if (!moduleFound || catalog.appletClass(elfAid, moduleAid) == null) {
            throw new StatusWordException(StatusWordException.SW_REFERENCED_DATA_NOT_FOUND, "no such applet in the load file");
        }
        if (registry.application(instanceAid) != null || Arrays.equals(instanceAid, isdAid)) {
            throw new StatusWordException(StatusWordException.SW_CONDITIONS_OF_USE, "an application with this AID exists");
        }
        if (privileges.length != 1 && privileges.length != 3) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "privileges are 1 or 3 bytes");
        }
        if (params.length < 2 || (params[0] & 0xFF) != 0xC9) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "install parameters must start with tag C9");
        }
        byte[] appletData = Tlv.find(params, 0xC9);
        // Java Card Applet.install() bArray: Li AID, Lc control info (privileges), La applet data
        byte[] installArray = GpCrypto.concat(new byte[] {(byte) instanceAid.length}, instanceAid,
                new byte[] {(byte) privileges.length}, privileges, new byte[] {(byte) appletData.length}, appletData);
        if (installArray.length > 127) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "install parameters too long");
        }
        host.install(elfAid, moduleAid, instanceAid, installArray);
        byte[] fullPrivileges = privileges.length == 3 ? privileges : new byte[] {privileges[0], 0, 0};
        registry.add(new CardRegistry.Application(instanceAid, elfAid, moduleAid, fullPrivileges, CardRegistry.SELECTABLE));
        return new byte[] {0x00};
    }

    private byte[] delete(ShortApdu command) {
        if (command.p1 != 0x00 || (command.p2 != 0x00 && command.p2 != 0x80)) {
            throw new StatusWordException(StatusWordException.SW_INCORRECT_P1P2, "DELETE P1 00, P2 00 or 80");
        }
        byte[] aid = Tlv.find(command.data, 0x4F);
        if (aid == null) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "DELETE needs tag 4F");
        }
        if (Arrays.equals(aid, isdAid)) {
            throw new StatusWordException(StatusWordException.SW_CONDITIONS_OF_USE, "the ISD cannot be deleted");
        }
        if (registry.application(aid) != null) {
            host.delete(aid);
            registry.removeApplication(aid);
            return new byte[] {0x00};
        }
        if (registry.loadFile(aid) == null) {
            throw new StatusWordException(StatusWordException.SW_REFERENCED_DATA_NOT_FOUND, "no such object on the card");
        }
        List<CardRegistry.Application> instances = registry.instancesOf(aid);
        if (!instances.isEmpty() && command.p2 != 0x80) {
            throw new StatusWordException(StatusWordException.SW_CONDITIONS_OF_USE,
                    "load file has applications; delete them or use DELETE with related objects");
        }
        for (CardRegistry.Application app : instances) {
            host.delete(app.aid);
            registry.removeApplication(app.aid);
        }
        registry.removeLoadFile(aid);
        return new byte[] {0x00};
    }

    // ---------------------------------------------------------------- PUT KEY / SET STATUS

    /**
     * PUT KEY (GPCS 11.8): P1 the version of the key set to replace (00: add a new one), P2 key
     * identifier 01 with b8 set (ENC, MAC, DEK in one command). Data: new version, then per
     * key: type (80 DES, 88 AES), length, value encrypted under the session's DEK (SCP02:
     * session DEK, 3DES-ECB; SCP03: static DEK, AES-CBC, with a key length byte first,
     * Amendment D 7.2.2), 03 and the key check value. Answers the version and the three KCVs.
     */
    private byte[] putKey(ShortApdu command) {
        if ((command.p2 & 0x7F) != 0x01 || (command.p2 & 0x80) == 0 || (command.p1 & 0x80) != 0) {
            throw new StatusWordException(StatusWordException.SW_INCORRECT_P1P2,
                    "PUT KEY: P1 key version (00 adds), P2 81 (ENC, MAC and DEK)");
        }
        byte[] d = command.data;
        if (d.length < 1) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "PUT KEY data empty");
        }
        int newVersion = d[0] & 0xFF;
        if (newVersion < 0x01 || newVersion > 0x7F) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "key version outside 01..7F");
        }
        KeySet old = null;
        for (KeySet k : keySets) {
            if (k.version == command.p1) {
                old = k;
            }
        }
        if (command.p1 != 0 && old == null) {
            throw new StatusWordException(StatusWordException.SW_REFERENCED_DATA_NOT_FOUND, "no key set to replace");
        }
        for (KeySet k : keySets) {
            if (k.version == newVersion && k != old) {
                throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "a key set with this version exists");
            }
        }
        byte[][] keys = new byte[3][];
        int type = -1;
        ByteArrayOutputStream answer = new ByteArrayOutputStream();
        answer.write(newVersion);
        int pos = 1;
        try {
            for (int n = 0; n < 3; n++) {
                int keyType = d[pos++] & 0xFF;
                int len = d[pos++] & 0xFF;
                byte[] field = Arrays.copyOfRange(d, pos, pos + len);
                pos += len;
                int kcvLen = d[pos++] & 0xFF;
                byte[] kcv = Arrays.copyOfRange(d, pos, pos + kcvLen);
                pos += kcvLen;
                if ((keyType != KeySet.TYPE_DES && keyType != KeySet.TYPE_AES) || (type >= 0 && keyType != type)
                        || kcvLen != 3 || pos > d.length) {
                    throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "key data malformed");
                }
                type = keyType;
                byte[] key;
                if (keyType == KeySet.TYPE_AES) {
                    int keyLength = field[0] & 0xFF;
                    byte[] plain = channel.decryptKey(Arrays.copyOfRange(field, 1, field.length));
                    if (keyLength != 16 && keyLength != 24 && keyLength != 32 || keyLength > plain.length) {
                        throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "AES key length");
                    }
                    key = Arrays.copyOf(plain, keyLength);
                } else {
                    if (len != 16) {
                        throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "DES keys are 16 bytes");
                    }
                    key = channel.decryptKey(field);
                }
                byte[] computed = GpCrypto.kcv(keyType, key);
                if (!GpCrypto.equal(computed, kcv)) {  // a key damaged in transit never replaces a working one
                    throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "key check value does not match");
                }
                keys[n] = key;
                answer.write(computed, 0, 3);
            }
        } catch (ArrayIndexOutOfBoundsException e) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "key data truncated");
        }
        if (pos != d.length) {
            throw new StatusWordException(StatusWordException.SW_WRONG_DATA, "trailing bytes after three keys");
        }
        int scp = type == KeySet.TYPE_AES ? 0x03 : 0x02;
        int i = scp == 0x02 ? 0x55 : Scp03CardSession.I_PSEUDO_RANDOM;
        for (KeySet k : keySets) {  // the card's SCP03 mode (S8/S16) stays what the card implements
            if (k.scp == scp) {
                i = k.i;
            }
        }
        KeySet replacement = new KeySet(newVersion, scp, i, keys[0], keys[1], keys[2]);
        if (old != null) {
            keySets.set(keySets.indexOf(old), replacement);
        } else {
            keySets.add(replacement);
        }
        return answer.toByteArray();
    }

    /**
     * SET STATUS (GPCS 11.10): P1 80 the card (P2 7F lock, 0F unlock back to SECURED), P1 40 an
     * application (P2 80 lock, 00 unlock), the AID as data.
     */
    private byte[] setStatus(ShortApdu command) {
        if (command.p1 == 0x80) {
            if (command.data.length != 0 && !Arrays.equals(command.data, isdAid)) {
                throw new StatusWordException(StatusWordException.SW_REFERENCED_DATA_NOT_FOUND, "not this card's ISD");
            }
            if (command.p2 == CARD_LOCKED) {
                cardLifeCycle = CARD_LOCKED;
            } else if (command.p2 == CARD_SECURED && cardLifeCycle == CARD_LOCKED && !authBlocked) {
                cardLifeCycle = CARD_SECURED;
            } else {
                throw new StatusWordException(StatusWordException.SW_INCORRECT_P1P2, "card life cycle transition not allowed");
            }
            return new byte[0];
        }
        if (command.p1 != 0x40) {
            throw new StatusWordException(StatusWordException.SW_INCORRECT_P1P2, "SET STATUS P1 80 or 40");
        }
        CardRegistry.Application app = registry.application(command.data);
        if (app == null) {
            throw new StatusWordException(StatusWordException.SW_REFERENCED_DATA_NOT_FOUND, "no such application");
        }
        if (command.p2 == APPLICATION_LOCKED) {
            app.lifeCycle |= APPLICATION_LOCKED;
        } else if (command.p2 == 0x00 && (app.lifeCycle & APPLICATION_LOCKED) != 0) {
            app.lifeCycle &= ~APPLICATION_LOCKED;
        } else {
            throw new StatusWordException(StatusWordException.SW_INCORRECT_P1P2, "application life cycle transition not allowed");
        }
        return new byte[0];
    }
}

package org.cardshield.virtualcard.gp;

import java.io.ByteArrayOutputStream;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;

/**
 * A GlobalPlatform Issuer Security Domain in front of jcardsim (GPCS v2.3 chapter 11):
 * SELECT, INITIALIZE UPDATE / EXTERNAL AUTHENTICATE (SCP02 i=55, SCP03 i=10), GET STATUS,
 * GET DATA, INSTALL [for load], LOAD, INSTALL [for install and make selectable], DELETE.
 *
 * The host passes every APDU to {@link #process}; null means "not for the ISD", and the
 * host hands the APDU to the selected applet. Card state lives as long as this object.
 */
public final class IssuerSecurityDomain {
    static final byte[] TEST_KEY = LoadFile.hex("404142434445464748494A4B4C4D4E4F");
    static final byte[] GP_OID = LoadFile.hex("2A864886FC6B");
    static final int CARD_SECURED = 0x0F;   // GPCS 5.1.1
    static final int CARD_LOCKED = 0x7F;
    static final byte[] ISD_PRIVILEGES = {(byte) 0x9E, (byte) 0xFE, (byte) 0x80};
    /** CPLC IC fabricator "CS" and IC type "VC": how the CardShield tools recognise this card. */
    static final byte[] CPLC_MARKER = {0x43, 0x53, 0x56, 0x43};

    private final byte[] isdAid;
    private final List<KeySet> keySets = new ArrayList<>();
    private final int defaultScp;
    private final int maxAuthFailures;
    private final int memoryCapacity;
    private final byte[] kdd;
    private final AppletCatalog catalog;
    private final AppletHost host;
    private final CardRegistry registry = new CardRegistry();
    private final SecureRandom random = new SecureRandom();

    private int cardLifeCycle = CARD_SECURED;
    private int authFailures;          // counted at INITIALIZE UPDATE, cleared by a good EXTERNAL AUTHENTICATE
    private int scp02Sequence;
    private int scp03Sequence;
    private boolean isdSelected = true; // the ISD is the default selected application after reset
    private CardSecureChannel channel;
    private boolean channelPending;     // INITIALIZE UPDATE done, EXTERNAL AUTHENTICATE expected
    private LoadInProgress load;
    private byte[] statusRemainder;

    private static final class LoadInProgress {
        final byte[] loadFileAid;
        final ByteArrayOutputStream data = new ByteArrayOutputStream();
        int nextBlock;

        LoadInProgress(byte[] aid) {
            this.loadFileAid = aid;
        }
    }

    IssuerSecurityDomain(Properties config, AppletCatalog catalog, AppletHost host) {
        this.isdAid = LoadFile.hex(config.getProperty("gp.isd.aid", "A000000151000000"));
        this.defaultScp = Integer.parseInt(config.getProperty("gp.scp.default", "03"), 16);
        this.maxAuthFailures = Integer.parseInt(config.getProperty("gp.auth.max_failures", "10"));
        this.memoryCapacity = Integer.parseInt(config.getProperty("gp.memory.bytes", "131072"));
        this.kdd = LoadFile.hex(config.getProperty("gp.kdd", "4353000000005643AB01"));
        this.catalog = catalog;
        this.host = host;
        keySets.add(new KeySet(0x20, 0x02, TEST_KEY, TEST_KEY, TEST_KEY));
        keySets.add(new KeySet(0x30, 0x03, TEST_KEY, TEST_KEY, TEST_KEY));
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
            } catch (StatusWordException e) {
                if (selectByName) {  // an extended-length SELECT never names the ISD: the applets decide
                    return selectOther();
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
            return selectOther();
        }
        isdSelected = true;
        closeSession();
        load = null;
        if (command.p2 == 0x0C) {
            return sw(0x9000);
        }
        byte[] fci = Tlv.of(0x6F, Tlv.of(0x84, isdAid),
                Tlv.of(0xA5, Tlv.of(0x73, cardRecognitionData()), Tlv.of(0x9F65, new byte[] {(byte) 0xFF})));
        return ok(fci);
    }

    /** SELECT of another application: the applet runtime answers it (null), unless the card is locked. */
    private byte[] selectOther() {
        if (cardLifeCycle == CARD_LOCKED) {
            return sw(StatusWordException.SW_NOT_FOUND);  // GPCS 5.1.1.4: only the ISD is selectable
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
        if (cardLifeCycle == CARD_LOCKED) {
            throw new StatusWordException(StatusWordException.SW_AUTH_METHOD_BLOCKED, "card locked");
        }
        if (command.data.length != 8) {
            throw new StatusWordException(StatusWordException.SW_WRONG_LENGTH, "host challenge is 8 bytes");
        }
        KeySet keys = null;
        for (KeySet k : keySets) {
            if (command.p1 == k.version || (command.p1 == 0 && k.scp == defaultScp)) {
                keys = k;
            }
        }
        if (keys == null) {
            throw new StatusWordException(StatusWordException.SW_REFERENCED_DATA_NOT_FOUND,
                    "no key set with version " + Integer.toHexString(command.p1));
        }
        // The attempt counts until EXTERNAL AUTHENTICATE succeeds, as on real cards
        authFailures++;
        if (authFailures > maxAuthFailures) {
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
                Tlv.of(0x60, Tlv.of(0x06, GpCrypto.concat(oidPrefix, new byte[] {0x02, 0x02, 0x03, 0x01}))),
                Tlv.of(0x63, Tlv.of(0x06, GpCrypto.concat(oidPrefix, new byte[] {0x03}))),
                Tlv.of(0x64, Tlv.of(0x06, GpCrypto.concat(oidPrefix, new byte[] {0x04, 0x02, 0x55}))),
                Tlv.of(0x64, Tlv.of(0x06, GpCrypto.concat(oidPrefix,
                        new byte[] {0x04, 0x03, (byte) Scp03CardSession.I_PARAMETER}))));
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
        boolean tagged = (command.p2 & 0x02) != 0;
        if ((command.p2 & 0x01) != 0) {
            if (statusRemainder == null) {
                throw new StatusWordException(StatusWordException.SW_CONDITIONS_OF_USE, "no GET STATUS in progress");
            }
            return pageStatus(statusRemainder);
        }
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
            case 0x20:
            case 0x10:
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
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        for (byte[] e : entries) {
            all.write(e, 0, e.length);
        }
        return pageStatus(all.toByteArray());
    }

    /** Returns what fits one response; the rest waits for GET STATUS [next] behind SW 6310 (GPCS 11.4.3). */
    private byte[] pageStatus(byte[] remaining) {
        statusRemainder = null;
        if (remaining.length <= 240) {
            return remaining;
        }
        int cut = 0;
        int pos = 0;
        while (pos < remaining.length) {
            int next = Tlv.end(remaining, pos);
            if (next > 240) {
                break;
            }
            cut = next;
            pos = next;
        }
        statusRemainder = Arrays.copyOfRange(remaining, cut, remaining.length);
        throw new MoreData(Arrays.copyOf(remaining, cut));
    }

    private static boolean matches(byte[] aid, byte[] prefix) {
        return prefix.length <= aid.length && Arrays.equals(prefix, Arrays.copyOf(aid, prefix.length));
    }

    private byte[] entry(boolean tagged, byte[] aid, int lifeCycle, byte[] privileges, byte[] elf, byte[] version,
                         List<byte[]> modules) {
        if (!tagged) {  // GPCS 11.4.3.1 legacy format
            return GpCrypto.concat(new byte[] {(byte) aid.length}, aid,
                    new byte[] {(byte) lifeCycle, privileges == null ? 0 : privileges[0]});
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
        r.next();  // load file data block hash (not checked: no DAP on this card)
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
        load = new LoadInProgress(elf);
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
        LoadFile file = LoadFile.parse(done.data.toByteArray());
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
}

package org.cardshield.virtualcard;

import com.licel.jcardsim.base.LoadFile;
import com.licel.jcardsim.base.Simulator;
import com.licel.jcardsim.base.SimulatorRuntime;
import com.licel.jcardsim.utils.AIDUtil;
import javacard.framework.AID;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.SystemException;
import org.cardshield.virtualcard.strict.CardProfile;
import org.cardshield.virtualcard.strict.InstrumentingClassLoader;
import org.cardshield.virtualcard.strict.StrictCard;

/**
 * The Java Card runtime of the virtual card: jcardsim's Simulator holding the load files of
 * the {@link AppletRegistry} and the applet instances created from them.
 *
 * jcardsim semantics relied on (checked in its SimulatorRuntime): reset() clears
 * CLEAR_ON_RESET/DESELECT transient arrays and the selection but keeps applet instances
 * (persistent state); resetRuntime() deletes every instance and load file.
 *
 * On a strict profile the applet classes are loaded through an
 * {@link InstrumentingClassLoader}: their persistent writes, transactions and allocations go
 * through {@link StrictCard} (journal, commit capacity, memory budget, tear points); see
 * docs/virtual-card.md. The lenient profile loads them unmodified.
 */
public final class AppletRuntime implements ApduHandler {
    private final AppletRegistry registry;
    private final Runtime runtime = new Runtime();
    private final Simulator simulator = new Simulator(runtime);
    private final CardProfile profile;
    private final ClassLoader appletLoader;
    /** The instance whose install() runs now: it owns what install() allocates. */
    private byte[] installing;

    /** Exposes the protected load-file API of jcardsim's runtime. */
    private static final class Runtime extends SimulatorRuntime {
        void load(LoadFile loadFile) {
            loadLoadFile(loadFile);
        }

        void delete(AID aid) {
            deleteApplet(aid);
        }

        javacard.framework.Applet instance(AID aid) {
            return getApplet(aid);
        }
    }

    public AppletRuntime(AppletRegistry registry) {
        this(registry, CardProfile.lenient(), false);
    }

    public AppletRuntime(AppletRegistry registry, CardProfile profile, boolean strict) {
        this.registry = registry;
        this.profile = profile;
        StrictCard.configure(profile);
        StrictCard.wipe();
        StrictCard.context(this::currentContext);
        ClassLoader host = AppletRuntime.class.getClassLoader();
        this.appletLoader = strict ? new InstrumentingClassLoader(host, appletPackages(registry), profile) : null;
        // APDU.getProtocol() says what the ATR announces: T=1 with extended APDUs, or T=0 on a
        // T=0 profile (where an applet must not read incoming data of a case-2 command,
        // P3 being Le there, and a case-4 command reaches it without Le: T0Card)
        simulator.changeProtocol(profile.t0 ? "T=0" : "T=1");
        loadAll();
    }

    /** The packages of the registered applet classes: what the strict card instruments. */
    private static java.util.List<String> appletPackages(AppletRegistry registry) {
        java.util.List<String> packages = new java.util.ArrayList<>();
        for (AppletRegistry.LoadFile file : registry.all()) {
            int dot = file.appletClass.lastIndexOf('.');
            packages.add(dot < 0 ? "" : file.appletClass.substring(0, dot));
        }
        return packages;
    }

    public boolean strict() {
        return appletLoader != null;
    }

    public CardProfile profile() {
        return profile;
    }

    private void loadAll() {
        for (AppletRegistry.LoadFile file : registry.all()) {
            Class<? extends javacard.framework.Applet> appletClass;
            try {
                Class<?> type = appletLoader == null ? Class.forName(file.appletClass)
                        : Class.forName(file.appletClass, true, appletLoader);
                appletClass = type.asSubclass(javacard.framework.Applet.class);
            } catch (ClassNotFoundException | ClassCastException e) {
                throw new IllegalStateException("applet class " + file.appletClass + " not on the classpath "
                        + "or not a javacard.framework.Applet: build the applet first", e);
            }
            runtime.load(new LoadFile(AIDUtil.create(file.packageAid), AIDUtil.create(file.moduleAid), appletClass));
        }
    }

    /**
     * INSTALL [for install]: create an instance of the module in the package. installData is the
     * install() parameter block GlobalPlatform defines (11.5.2.3.7): Li AID | Lc privileges | La
     * application-specific parameters (the value of tag C9).
     */
    public void install(byte[] packageAid, byte[] moduleAid, byte[] instanceAid, byte[] installData) {
        if (registry.find(packageAid) == null) {
            throw new IllegalArgumentException("no load file with package AID " + Hex.encode(packageAid));
        }
        if (installData.length > 127) {
            throw new IllegalArgumentException("install parameters exceed the 127 bytes install() can take");
        }
        boolean replacesNothing = runtime.instance(AIDUtil.create(instanceAid)) == null;
        long refusals = StrictCard.memoryRefusals();
        installing = instanceAid;
        try {
            runtime.installApplet(AIDUtil.create(packageAid), AIDUtil.create(moduleAid), AIDUtil.create(instanceAid),
                    installData, (short) 0, (byte) installData.length);
        } catch (RuntimeException e) {
            if (replacesNothing) { // a failed installation is undone: what install() allocated is free again
                StrictCard.release(Hex.encode(instanceAid));
            }
            if (StrictCard.memoryRefusals() != refusals) {
                // jcardsim turns every exception of install() but ISOException into ILLEGAL_USE
                throw new SystemException(SystemException.NO_RESOURCE);
            }
            throw e;
        } finally {
            installing = null;
        }
    }

    /** The applet instance in whose context the card runs now (owner of what it allocates), "" for none. */
    private String currentContext() {
        if (installing != null) {
            return Hex.encode(installing);
        }
        AID selected = runtime.getAID();
        if (selected == null) {
            return "";
        }
        byte[] aid = new byte[16];
        return Hex.encode(java.util.Arrays.copyOf(aid, selected.getBytes(aid, (short) 0)));
    }

    /** The parameter block of {@link #install}, built from its three parts. */
    public static byte[] installData(byte[] instanceAid, byte[] privileges, byte[] appletParameters) {
        byte[] out = new byte[3 + instanceAid.length + privileges.length + appletParameters.length];
        int i = 0;
        out[i++] = (byte) instanceAid.length;
        System.arraycopy(instanceAid, 0, out, i, instanceAid.length);
        i += instanceAid.length;
        out[i++] = (byte) privileges.length;
        System.arraycopy(privileges, 0, out, i, privileges.length);
        i += privileges.length;
        out[i++] = (byte) appletParameters.length;
        System.arraycopy(appletParameters, 0, out, i, appletParameters.length);
        return out;
    }

    /** DELETE of an applet instance: it and the memory of every object it owned are gone. */
    public void delete(byte[] instanceAid) {
        runtime.delete(AIDUtil.create(instanceAid));
        StrictCard.release(Hex.encode(instanceAid));
    }

    /**
     * Test facility of the virtual card only, with no counterpart on a real card (reached
     * through the host's control socket, never by APDU): overwrites, in place, a byte array
     * of an applet instance's persistent state, named by a path of field names from the
     * instance (e.g. "state.counter"), with a value of the same length. It lets a test reach
     * a state that would take billions of APDUs (a signature counter at its end).
     */
    public void overwriteBytes(byte[] instanceAid, String fieldPath, byte[] value) {
        Object target = field(instanceAid, fieldPath);
        if (!(target instanceof byte[])) {
            throw new IllegalArgumentException(fieldPath + " is not a byte array");
        }
        byte[] bytes = (byte[]) target;
        if (bytes.length != value.length) {
            throw new IllegalArgumentException(fieldPath + " holds " + bytes.length + " bytes, not " + value.length);
        }
        System.arraycopy(value, 0, bytes, 0, value.length);
    }

    /** Test facility (host controls only): the object at a field path of an applet instance. */
    Object field(byte[] instanceAid, String fieldPath) {
        Object instance = runtime.instance(AIDUtil.create(instanceAid));
        if (instance == null) {
            throw new IllegalArgumentException("no applet instance " + Hex.encode(instanceAid));
        }
        return InstanceFields.resolve(instance, fieldPath);
    }

    /** Test facility (host controls only): jcardsim's APDU buffer, as the last command left it. */
    byte[] apduBuffer() {
        return runtime.getCurrentAPDU().getBuffer();
    }

    /** Back to a card fresh from the factory: no instances, load files registered again. */
    public void wipe() {
        simulator.resetRuntime();
        StrictCard.wipe();
        loadAll();
    }

    @Override
    public byte[] process(byte[] command) {
        if (!wellFormed(command)) {
            // jcardsim's ApduCase throws on such bytes (found by the APDU fuzzer: 00 C0 00 00
            // 00 1D 56 52 09, 84 56 10 02 00 FE), which ended the host and lost the card. A
            // card's I/O layer answers "wrong length" (ISO 7816-3 12.1.3).
            return sw(ISO7816.SW_WRONG_LENGTH);
        }
        StrictCard.beginCommand();
        try {
            byte[] response = transmit(command);
            if (StrictCard.powerWasLost()) {
                return powerLossAnswer();
            }
            // jcardsim answers 6999 to a SELECT naming no applet; a card answers 6A82 (ISO 7816-4 11.2.2).
            if (response.length == 2 && response[0] == 0x69 && response[1] == (byte) 0x99
                    && isSelectByName(command) && !instanceExists(command)) {
                return sw(ISO7816.SW_FILE_NOT_FOUND);
            }
            return response;
        } catch (org.cardshield.virtualcard.strict.PowerLoss e) {
            if (StrictCard.powerWasLost()) { // torn outside jcardsim's own catch (e.g. in install)
                return powerLossAnswer();
            }
            throw e; // already answered by powerLossAnswer
        } catch (ISOException e) {
            return sw(e.getReason());
        } catch (SystemException e) {
            return sw(ISO7816.SW_UNKNOWN);
        } catch (IllegalArgumentException e) {
            // a well-formed extended APDU longer than jcardsim's buffer (Lc 65526): too long
            return sw(ISO7816.SW_WRONG_LENGTH);
        } catch (ArrayIndexOutOfBoundsException e) {
            if (isSelectByName(command)) {
                // jcardsim compares an AID longer than 16 bytes out of bounds (found by the
                // fuzzer: SELECT with Lc F5); no application has such a name: 6A82
                return sw(ISO7816.SW_FILE_NOT_FOUND);
            }
            return unexpected(e);
        } catch (RuntimeException e) {
            return unexpected(e);
        }
    }

    /** One command through jcardsim; whatever happens, the JCRE's end-of-command rules apply after it. */
    private byte[] transmit(byte[] command) {
        try {
            return simulator.transmitCommand(fitSimulatorBuffer(command));
        } finally {
            StrictCard.endCommand();
        }
    }

    /**
     * The power went at a tear point (host control TEAR-AT): the card answers nothing and
     * comes back as after a power cycle: its open transaction rolled back, RAM cleared, no
     * applet selected. The PowerLoss thrown on tells the reader link to drop the card
     * (VpcdLink): the reader's transmit gets no answer, as with a card pulled out, and the
     * card stays out until the control INSERT.
     */
    private byte[] powerLossAnswer() {
        String where = StrictCard.lastCommand().tornAt;
        System.err.println("virtualcard: power lost at tear point " + where);
        simulator.reset();
        StrictCard.powerOn();
        throw new org.cardshield.virtualcard.strict.PowerLoss(where);
    }

    /** A simulator fault must not end the host (the reader would lose its card): 6F00, logged. */
    private static byte[] unexpected(RuntimeException e) {
        System.err.println("virtualcard: simulator fault answered 6F00: " + e);
        return sw(ISO7816.SW_UNKNOWN);
    }

    /**
     * jcardsim's short APDU buffer holds 260 bytes, so a case-4 command with Lc=255 and Le
     * (261 bytes, which a card takes) fails inside the simulator with 6F00. Pass it on as
     * the equivalent extended APDU: same header, data and Ne.
     */
    static byte[] fitSimulatorBuffer(byte[] command) {
        if (command.length != 261 || command[4] != (byte) 0xFF) {
            return command;
        }
        byte[] extended = new byte[4 + 3 + 255 + 2];
        System.arraycopy(command, 0, extended, 0, 4);
        extended[6] = (byte) 0xFF;
        System.arraycopy(command, 5, extended, 7, 255);
        int ne = command[260] == 0 ? 256 : command[260] & 0xFF;
        extended[262] = (byte) (ne >> 8);
        extended[263] = (byte) ne;
        return extended;
    }

    /** The seven command cases of ISO/IEC 7816-4 clause 5.1 (short and extended). */
    static boolean wellFormed(byte[] c) {
        int n = c.length - 4;
        if (n < 0) {
            return false;
        }
        if (n <= 1) {
            return true; // case 1, case 2 short
        }
        int b0 = c[4] & 0xFF;
        if (b0 != 0) {
            return n == 1 + b0 || n == 2 + b0; // case 3 / 4 short
        }
        if (n == 3) {
            return true; // case 2 extended
        }
        if (n < 3) {
            return false;
        }
        int lc = ((c[5] & 0xFF) << 8) | (c[6] & 0xFF);
        return lc != 0 && (n == 3 + lc || n == 5 + lc); // case 3 / 4 extended
    }

    private static boolean isSelectByName(byte[] command) {
        return command.length >= 5 && (command[0] & 0xFC) == 0 && command[1] == (byte) 0xA4 && command[2] == 0x04;
    }

    private boolean instanceExists(byte[] command) {
        int length = command[4] & 0xFF;
        return length >= 5 && command.length >= 5 + length
                && runtime.lookupAID(command, (short) 5, (byte) length) != null;
    }

    @Override
    public void reset() {
        simulator.reset();
        StrictCard.powerOn();
    }

    public byte[] atr() {
        return simulator.getATR();
    }

    static byte[] sw(short sw) {
        return new byte[] {(byte) (sw >> 8), (byte) sw};
    }
}

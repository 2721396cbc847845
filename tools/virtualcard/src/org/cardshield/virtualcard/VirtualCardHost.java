package org.cardshield.virtualcard;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Constructor;
import java.nio.file.Path;
import java.util.Properties;
import org.cardshield.virtualcard.strict.CardProfile;
import org.cardshield.virtualcard.strict.StrictCard;

/**
 * The CardShield virtual card: jcardsim's Java Card runtime behind vpcd, so that pcscd
 * presents it to every PC/SC client exactly like a card in a USB reader.
 *
 * Usage: java -cp jcardsim.jar:virtualcard-classes:applet-classes
 *             org.cardshield.virtualcard.VirtualCardHost card.properties
 *
 * card.properties (written by tools/cardshield/sim):
 *   vpcd.host, vpcd.port          where vpcd listens (inside the harness's network namespace)
 *   atr                           hex; must offer T=1
 *   control.socket                Unix socket path for the host-only controls (ControlServer)
 *   profile.name, profile.strict, profile.*   the card profile (CardProfile; strict=true loads
 *                                 the applets instrumented: journal, limits, tear points)
 *   loadfile.N.package / .module / .class      executable load files (AppletRegistry)
 *   install.N.package / .module / .instance / .privileges / .parameters
 *                                 instances created at start and by PRISTINE
 *   test.powerloss.pause.ms       test facility: how long the host thread pauses after a power
 *                                 loss (default 0), to show an INSERT during that pause counts
 *   frontend.class                optional ApduHandler seeing every APDU first, constructed with
 *                                 (ApduHandler next, AppletRuntime runtime[, Properties config]),
 *                                 e.g. org.cardshield.virtualcard.gp.GlobalPlatformFrontEnd
 */
public final class VirtualCardHost {
    private final Properties config;
    private final AppletRegistry registry = new AppletRegistry();
    private final AppletRuntime runtime;
    private final ApduHandler front;
    private final VpcdLink link;
    private final Object cardLock = new Object();
    private final Object insertion = new Object();
    private volatile boolean removed;

    private VirtualCardHost(Properties config) throws Exception {
        this.config = config;
        for (int i = 0; config.containsKey("loadfile." + i + ".package"); i++) {
            registry.register(hex("loadfile." + i + ".package"), hex("loadfile." + i + ".module"),
                    required("loadfile." + i + ".class"));
        }
        // RandomData must come from SecureRandom: jcardsim's default is a FIXED seed.
        System.clearProperty("com.licel.jcardsim.randomdata.seed");
        System.setProperty("com.licel.jcardsim.randomdata.secure", "1");
        System.setProperty("com.licel.jcardsim.card.ATR", required("atr"));
        runtime = new AppletRuntime(registry, CardProfile.from(config),
                Boolean.parseBoolean(config.getProperty("profile.strict", "false").trim()));
        installConfigured();
        ApduHandler card = frontEnd(runtime);
        // a T=0 card profile: the T=0 transport (no extended APDUs, case 4 by 61xx/GET RESPONSE)
        front = runtime.profile().t0 ? new T0Card(card) : card;
        link = new VpcdLink(required("vpcd.host"), Integer.parseInt(required("vpcd.port")),
                Hex.decode(required("atr")), cardLock);
    }

    private void installConfigured() {
        for (int i = 0; config.containsKey("install." + i + ".instance"); i++) {
            String prefix = "install." + i + ".";
            byte[] instance = hex(prefix + "instance");
            byte[] data = AppletRuntime.installData(instance, hex(prefix + "privileges"), hex(prefix + "parameters"));
            try {
                runtime.install(hex(prefix + "package"), hex(prefix + "module"), instance, data);
            } catch (RuntimeException e) {
                throw new IllegalStateException("installing instance " + Hex.encode(instance) + " failed: " + e, e);
            }
        }
    }

    private ApduHandler frontEnd(AppletRuntime applets) throws Exception {
        String name = config.getProperty("frontend.class", "").trim();
        if (name.isEmpty()) {
            return applets;
        }
        Class<? extends ApduHandler> type = Class.forName(name).asSubclass(ApduHandler.class);
        try {  // a front end may also take the card's configuration
            return type.getConstructor(ApduHandler.class, AppletRuntime.class, Properties.class)
                    .newInstance(applets, applets, config);
        } catch (NoSuchMethodException e) {
            Constructor<? extends ApduHandler> constructor = type.getConstructor(ApduHandler.class, AppletRuntime.class);
            return constructor.newInstance(applets, applets);
        }
    }

    private void run() throws Exception {
        new ControlServer(Path.of(required("control.socket")), new ControlServer.Commands() {
            public void pristine() {
                synchronized (cardLock) {
                    runtime.wipe();
                    installConfigured();
                    front.pristine();
                }
            }

            public void remove() {
                removed = true;
                link.disconnect();
                synchronized (cardLock) {
                    front.reset(); // pulling the card cuts its power
                }
            }

            public void insert() {
                synchronized (insertion) {
                    removed = false;
                    insertion.notifyAll();
                }
            }

            public void setBytes(byte[] instanceAid, String fieldPath, byte[] value) {
                synchronized (cardLock) { // never in the middle of an APDU
                    runtime.overwriteBytes(instanceAid, fieldPath, value);
                }
            }

            public void tearAt(int point) {
                synchronized (cardLock) {
                    requireStrict();
                    StrictCard.arm(point);
                }
            }

            public void tearRandom(long seed) {
                synchronized (cardLock) {
                    requireStrict();
                    StrictCard.armRandom(seed);
                }
            }

            public String report() {
                synchronized (cardLock) {
                    requireStrict();
                    return StrictCard.lastCommand().toString();
                }
            }

            private void requireStrict() {
                if (!runtime.strict()) {
                    throw new IllegalStateException("tearing inside a command needs a strict card profile; this card runs "
                            + "profile " + runtime.profile().name + " (start it with --profile jcop4 or --profile sim)");
                }
            }

            public String probe(String[] words) {
                synchronized (cardLock) {
                    return new KeyProbe(runtime).handle(words);
                }
            }
        }).start();

        boolean announced = false;
        while (true) {
            synchronized (insertion) {
                while (removed) {
                    insertion.wait();
                }
            }
            link.connect(Long.parseLong(config.getProperty("vpcd.connect.timeout.ms", "20000")));
            if (!announced) {
                System.out.println("virtualcard: card inserted into vpcd at " + required("vpcd.host") + ":"
                        + required("vpcd.port"));
                announced = true;
            }
            if (link.serve(front, this::lostPower)) {
                // test facility: this thread held up after a power loss, as a loaded machine may
                // (tests/robustness/test_tearing_platform.py: an INSERT arriving meanwhile counts)
                Thread.sleep(Long.parseLong(config.getProperty("test.powerloss.pause.ms", "0").trim()));
                continue; // out of the reader until the control INSERT (lostPower)
            }
            if (!removed) {
                System.err.println("virtualcard: vpcd closed the connection (pcscd stopped?); exiting");
                System.exit(3);
            }
        }
    }

    /**
     * Power lost inside a command (TEAR-AT): the card is out of the reader, as a phone's card
     * losing power, until the control INSERT puts it back. Marked before the link drops
     * (VpcdLink.serve): marked after it, an INSERT sent as soon as pcscd saw the card leave
     * could come first and be undone, leaving the card out (the re-insertions pcscd
     * "missed" about once in a hundred tears under load).
     */
    private void lostPower() {
        synchronized (insertion) {
            removed = true;
        }
    }

    private String required(String key) {
        String value = config.getProperty(key);
        if (value == null || value.trim().isEmpty()) {
            throw new IllegalArgumentException("missing property " + key);
        }
        return value.trim();
    }

    private byte[] hex(String key) {
        return Hex.decode(config.getProperty(key, "").trim());
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: VirtualCardHost card.properties");
            System.exit(2);
        }
        Properties config = new Properties();
        try (InputStream in = new FileInputStream(args[0])) {
            config.load(in);
        }
        VirtualCardHost host;
        try {
            host = new VirtualCardHost(config);
        } catch (Exception e) {
            System.err.println("virtualcard: cannot start: " + e.getMessage());
            System.exit(2);
            return;
        }
        host.run();
    }
}

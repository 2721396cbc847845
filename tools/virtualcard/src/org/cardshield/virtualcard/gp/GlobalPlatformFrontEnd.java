package org.cardshield.virtualcard.gp;

import java.util.Properties;
import javacard.framework.ISOException;
import javacard.framework.SystemException;
import org.cardshield.virtualcard.ApduHandler;
import org.cardshield.virtualcard.AppletRuntime;

/**
 * Plugs the Issuer Security Domain into the virtual card host (frontend.class): every APDU
 * goes to the ISD first; what it does not handle goes to the applet runtime.
 *
 * From the host's card.properties it reads loadfile.N.package/module/class (the applet
 * classes a LOADed package links to) and install.N.* (instances present from the start,
 * listed in the registry as if installed at the factory), plus optional gp.* settings:
 * gp.isd.aid, gp.scp.default (02|03, for key version 00), gp.auth.max_failures,
 * gp.memory.bytes.
 */
public final class GlobalPlatformFrontEnd implements ApduHandler {
    private final ApduHandler next;
    private final Properties config;
    private final AppletRuntime runtime;
    private IssuerSecurityDomain isd;

    public GlobalPlatformFrontEnd(ApduHandler next, AppletRuntime runtime, Properties config) {
        this.next = next;
        this.runtime = runtime;
        this.config = config;
        this.isd = newIsd();
    }

    private IssuerSecurityDomain newIsd() {
        AppletCatalog catalog = new AppletCatalog();
        for (int i = 0; config.containsKey("loadfile." + i + ".package"); i++) {
            catalog.add(hex("loadfile." + i + ".package"), hex("loadfile." + i + ".module"),
                    config.getProperty("loadfile." + i + ".class"));
        }
        IssuerSecurityDomain domain = new IssuerSecurityDomain(config, catalog, new RuntimeHost());
        for (int i = 0; config.containsKey("install." + i + ".instance"); i++) {
            String p = "install." + i + ".";
            domain.registerFactoryInstance(hex(p + "package"), hex(p + "module"), hex(p + "instance"),
                    hex(p + "privileges"));
        }
        return domain;
    }

    private byte[] hex(String key) {
        return LoadFile.hex(config.getProperty(key, "").trim());
    }

    private final class RuntimeHost implements AppletHost {
        @Override
        public void install(byte[] packageAid, byte[] moduleAid, byte[] instanceAid, byte[] installArray) {
            try {
                runtime.install(packageAid, moduleAid, instanceAid, installArray);
            } catch (ISOException e) {
                throw new StatusWordException(e.getReason() & 0xFFFF, "applet install() refused");
            } catch (SystemException e) {
                if (e.getReason() == SystemException.NO_RESOURCE) { // the instance does not fit (GPCS 11.5.3)
                    throw new StatusWordException(StatusWordException.SW_NOT_ENOUGH_MEMORY,
                            "not enough memory for the applet instance");
                }
                throw new StatusWordException(StatusWordException.SW_WRONG_DATA,
                        "applet install() failed: SystemException " + e.getReason());
            } catch (RuntimeException e) {
                // jcardsim reports install() failures (bad parameters, allocation) as exceptions
                throw new StatusWordException(StatusWordException.SW_WRONG_DATA,
                        "applet install() failed: " + e.getClass().getSimpleName());
            }
        }

        @Override
        public void delete(byte[] instanceAid) {
            runtime.delete(instanceAid);
        }
    }

    @Override
    public byte[] process(byte[] command) {
        byte[] response = isd.process(command);
        return response != null ? response : next.process(command);
    }

    @Override
    public void reset() {
        isd.reset();
        next.reset();
    }

    /** Factory state: the runtime was wiped and the configured instances installed again. */
    @Override
    public void pristine() {
        isd = newIsd();
        next.reset();
    }
}

package pro.javacard.ant;

import java.io.FileWriter;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.tools.ant.BuildException;
import org.apache.tools.ant.Task;

/**
 * Test stand-in for ant-javacard's task (github.com/martinpaljak/ant-javacard, release
 * v25.12.01: task/src/main/java/pro/javacard/ant/JavaCard.java, JCCap.java, JCApplet.java).
 * It has the same element and attribute names, so Ant refuses what the real task would
 * refuse as unknown, and it records what build.xml passes into OUTPUT.stub. It does NOT
 * compile, convert, verify or check the SDK: that needs the real jar and an Oracle kit.
 */
public final class JavaCard extends Task {
    private String jckit;
    private final List<Cap> caps = new ArrayList<>();

    public void setJCKit(String value) { jckit = value; }

    public Cap createCap() {
        Cap cap = new Cap();
        caps.add(cap);
        return cap;
    }

    @Override
    public void execute() {
        for (Cap cap : caps) {
            String output = cap.values.get("output");
            if (output == null) throw new BuildException("stub: cap needs output");
            try (FileWriter out = new FileWriter(output + ".stub")) {
                out.write("javacard.jckit=" + jckit + "\n");
                for (Map.Entry<String, String> entry : cap.values.entrySet())
                    out.write("cap." + entry.getKey() + "=" + entry.getValue() + "\n");
                for (Applet applet : cap.applets)
                    out.write("applet." + applet.className + "=" + applet.aid + "\n");
            } catch (IOException e) {
                throw new BuildException(e);
            }
        }
    }

    public static final class Cap {
        final Map<String, String> values = new LinkedHashMap<>();
        final List<Applet> applets = new ArrayList<>();

        public void setJCKit(String v) { values.put("jckit", v); }
        public void setOutput(String v) { values.put("output", v); }
        public void setExport(String v) { values.put("export", v); }
        public void setJar(String v) { values.put("jar", v); }
        public void setJca(String v) { values.put("jca", v); }
        public void setPackage(String v) { values.put("package", v); }
        public void setClasses(String v) { values.put("classes", v); }
        public void setVersion(String v) { values.put("version", v); }
        public void setSources(String v) { values.put("sources", v); }
        public void setSources2(String v) { values.put("sources2", v); }
        public void setIncludes(String v) { values.put("includes", v); }
        public void setExcludes(String v) { values.put("excludes", v); }
        public void setVerify(boolean v) { values.put("verify", String.valueOf(v)); }
        public void setDebug(boolean v) { values.put("debug", String.valueOf(v)); }
        public void setStrip(boolean v) { values.put("strip", String.valueOf(v)); }
        public void setInts(boolean v) { values.put("ints", String.valueOf(v)); }
        public void setExportmap(boolean v) { values.put("exportmap", String.valueOf(v)); }
        public void setTargetsdk(String v) { values.put("targetsdk", v); }
        public void setAID(String v) { values.put("aid", v); }

        public Applet createApplet() {
            Applet applet = new Applet();
            applets.add(applet);
            return applet;
        }
    }

    public static final class Applet {
        String className;
        String aid;

        public void setClass(String v) { className = v; }
        public void setAID(String v) { aid = v; }
    }
}

package org.cardshield.applet;

/**
 * The CardShield applet, SIM build: replaces applet/src's CardShieldApplet.java. It does not
 * implement javacardx.apdu.ExtendedLength, so the CAP imports no javacardx.apdu and links on
 * cards without that optional package (many SIM cards). Short APDUs only: long command data
 * comes by command chaining, long responses by 61xx and GET RESPONSE (docs/apdu.md).
 */
public final class CardShieldApplet extends CardShieldCore {
    private CardShieldApplet(byte[] params, short paramsOff, short paramsLen) {
        super(params, paramsOff, paramsLen);
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        short data = appletDataOffset(bArray, bOffset, bLength);
        new CardShieldApplet(bArray, data, appletDataLength(bArray, bOffset, bLength, data))
                .register(bArray, (short) (bOffset + 1), bArray[bOffset]);
    }
}

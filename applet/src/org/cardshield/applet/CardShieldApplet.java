package org.cardshield.applet;

import javacardx.apdu.ExtendedLength;

/**
 * The CardShield applet, default build: extended APDUs (ISO/IEC 7816-4 clause 5.1) besides
 * chaining and GET RESPONSE. The SIM build (applet/variants/sim) replaces this file with one
 * that does not implement ExtendedLength, for cards without javacardx.apdu.
 */
public final class CardShieldApplet extends CardShieldCore implements ExtendedLength {
    private CardShieldApplet(byte[] params, short paramsOff, short paramsLen) {
        super(params, paramsOff, paramsLen);
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        short data = appletDataOffset(bArray, bOffset, bLength);
        new CardShieldApplet(bArray, data, appletDataLength(bArray, bOffset, bLength, data))
                .register(bArray, (short) (bOffset + 1), bArray[bOffset]);
    }
}

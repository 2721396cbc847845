package org.cardshield.platprobe;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;
import javacard.security.RSAPublicKey;
import javacard.security.RandomData;
import javacardx.apdu.ExtendedLength;

/**
 * Test applet of the strict virtual card's tear points inside platform calls: a key setter,
 * key generation and a crypto operation writing persistent memory, all outside a transaction.
 *
 * 80 40 P1 + 256 bytes (an extended APDU: it implements ExtendedLength): setModulus of a persistent RSA-2048 public key (P1 unused).
 * 80 42: the key's modulus (256 bytes).
 * 80 44: genKeyPair of a persistent RSA-2048 CRT pair.
 * 80 46 P1 P2: RandomData.generateData of (P1 P2) bytes into the persistent array data.
 * 80 48: data[0 .. 256).
 */
public final class PlatformProbe extends Applet implements ExtendedLength {
    private final RSAPublicKey key = (RSAPublicKey) KeyBuilder.buildKey(KeyBuilder.TYPE_RSA_PUBLIC,
            KeyBuilder.LENGTH_RSA_2048, false);
    private final KeyPair pair = new KeyPair(KeyPair.ALG_RSA_CRT, KeyBuilder.LENGTH_RSA_2048);
    private final RandomData random = RandomData.getInstance(RandomData.ALG_SECURE_RANDOM);
    private final byte[] data = new byte[256];

    public static void install(byte[] array, short offset, byte length) {
        new PlatformProbe().register(array, (short) (offset + 1), array[offset]);
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buffer = apdu.getBuffer();
        switch (buffer[ISO7816.OFFSET_INS]) {
            case 0x40:
                apdu.setIncomingAndReceive();
                key.setModulus(buffer, apdu.getOffsetCdata(), (short) 256);
                return;
            case 0x42:
                apdu.setOutgoingAndSend((short) 0, key.getModulus(buffer, (short) 0));
                return;
            case 0x44:
                pair.genKeyPair();
                return;
            case 0x46:
                random.generateData(data, (short) 0, Util.getShort(buffer, ISO7816.OFFSET_P1));
                return;
            case 0x48:
                Util.arrayCopyNonAtomic(data, (short) 0, buffer, (short) 0, (short) 256);
                apdu.setOutgoingAndSend((short) 0, (short) 256);
                return;
            default:
                ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
    }
}

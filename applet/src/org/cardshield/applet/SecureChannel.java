package org.cardshield.applet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.AESKey;
import javacard.security.KeyBuilder;
import javacardx.crypto.Cipher;

/**
 * Personalization secure channel (docs/personalization.md, section 3).
 *
 * A secured PERSONALIZE (E0) or ISSUE (E2) command carries
 * KVN(1) || CNTR(5) || CRYPTOGRAM(16n) || MAC(8). This class checks, in this order and
 * before anything changes: length (6700), key version (6A88), AES-CMAC over
 * 84 INS P1 P2 || KVN || CNTR || CRYPTOGRAM (6988), counter above the last accepted one
 * (6985), then decrypts (AES-128-CBC, IV = AES(K-ENC, 00..00 || CNTR)) and checks the
 * ISO/IEC 9797-1 method 2 padding (6988). It then lets {@link Target} prepare what must
 * not run inside a transaction (key generation), applies the plain command through
 * {@link Target} and stores the counter in one transaction, and returns the command's
 * response data (empty except for PERSONALIZE P1=05, the attestation public key) followed
 * by the receipt AES-CMAC(K-MAC, 00 INS P1 P2 || KVN || CNTR || response data || 90 00)[0..8],
 * so the issuer gets the response data authenticated by the card's key set.
 *
 * AES-CMAC (NIST SP 800-38B) is computed here over Cipher.ALG_AES_BLOCK_128_CBC_NOPAD,
 * because Signature.ALG_AES_CMAC_128 is not available on every Java Card 3.0.4 card.
 * One Cipher object serves CMAC, IV derivation and decryption. No allocation after
 * construction; scratch data is transient (CLEAR_ON_DESELECT) and zeroed when each
 * secured command ends, on every path, so no byte derived from K-MAC or K-ENC outlives
 * the command. The counter and the key set are persistent; the counter changes only
 * inside the transaction of the effect.
 */
public final class SecureChannel {

    /** The applet's personalization entry point, called with already-unwrapped data. */
    public interface Target {
        /**
         * Runs after every check passed and before the transaction, for work that must not
         * be journalled (generating a key pair writes hundreds of key bytes). It may refuse
         * (ISOException); the counter is then not consumed. out[outOff..] is free scratch.
         */
        void preparePersonalization(byte ins, byte p1, byte p2, byte[] data, short off, short len,
                                    byte[] out, short outOff);

        /**
         * Applies PERSONALIZE (ins E0) or ISSUE (ins E2) with plain data, or throws an
         * ISOException to refuse. Runs inside the secure channel's transaction: it must
         * not begin one itself. Writes its response data to out[outOff..] and returns its
         * length (0 for none); the receipt covers it.
         */
        short applyPersonalization(byte ins, byte p1, byte p2, byte[] data, short off, short len,
                                   byte[] out, short outOff);
    }

    public static final byte CLA_SECURED = (byte) 0x84;
    public static final byte TAG_KEY_SET = (byte) 0xC0;
    public static final byte TAG_CARD_ID = (byte) 0xC1;
    public static final byte FCI_TAG_CARD_ID = (byte) 0x8A;
    public static final byte FCI_TAG_STATE = (byte) 0x8B;
    public static final short RECEIPT_LENGTH = 8;

    private static final short BLOCK = 16;
    private static final short COUNTER_LENGTH = 5;
    private static final short MAC_LENGTH = 8;
    private static final short KEY_LENGTH = 16;
    private static final short KEY_SET_LENGTH = (short) (1 + 2 * KEY_LENGTH);
    private static final short CARD_ID_MIN = 8;
    private static final short CARD_ID_MAX = 16;
    /** KVN + CNTR + one block + MAC */
    private static final short MIN_SECURED = (short) (1 + COUNTER_LENGTH + BLOCK + MAC_LENGTH);
    private static final byte CMAC_RB = (byte) 0x87;
    /** ISO/IEC 7816-4: incorrect secure messaging data objects (MAC, padding) */
    private static final short SW_SM_INCORRECT = (short) 0x6988;
    /** ISO/IEC 7816-4: referenced data (here the key version) not found */
    private static final short SW_KEY_VERSION_NOT_FOUND = (short) 0x6A88;
    /** ISO/IEC 7816-4: conditions of use not satisfied (counter not above the last one) */
    private static final short SW_COUNTER_NOT_HIGHER = ISO7816.SW_CONDITIONS_NOT_SATISFIED;

    // transient scratch layout
    private static final short S_BLOCK = 0;        // block being assembled
    private static final short S_STATE = 16;       // CBC-MAC state, then the tag
    private static final short S_SUBKEY = 32;      // CMAC subkey K1 or K2
    private static final short S_IV = 48;          // header / receipt message, decryption IV
    private static final short SCRATCH_LENGTH = 64;

    private final AESKey encKey;
    private final AESKey macKey;
    private final Cipher cipher;
    private final byte[] lastCounter;
    private final byte[] cardId;
    private byte cardIdLength;
    private byte keyVersion;
    private boolean keysInstalled;
    private final byte[] scratch;
    private final short[] fill;

    public SecureChannel() {
        encKey = (AESKey) KeyBuilder.buildKey(KeyBuilder.TYPE_AES, KeyBuilder.LENGTH_AES_128, false);
        macKey = (AESKey) KeyBuilder.buildKey(KeyBuilder.TYPE_AES, KeyBuilder.LENGTH_AES_128, false);
        cipher = Cipher.getInstance(Cipher.ALG_AES_BLOCK_128_CBC_NOPAD, false);
        lastCounter = new byte[COUNTER_LENGTH];
        cardId = new byte[CARD_ID_MAX];
        scratch = JCSystem.makeTransientByteArray(SCRATCH_LENGTH, JCSystem.CLEAR_ON_DESELECT);
        fill = JCSystem.makeTransientShortArray((short) 1, JCSystem.CLEAR_ON_DESELECT);
    }

    // ---------------------------------------------------------------- install time

    /** Install tag C0: key version (1..255) || K-ENC (16) || K-MAC (16). */
    public void installKeySet(byte[] buf, short off, short len) {
        if (len != KEY_SET_LENGTH || buf[off] == 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        keyVersion = buf[off];
        encKey.setKey(buf, (short) (off + 1));
        macKey.setKey(buf, (short) (off + 1 + KEY_LENGTH));
        keysInstalled = true;
    }

    /** Install tag C1: the card identity the key set was diversified with (8-16 bytes). */
    public void installCardId(byte[] buf, short off, short len) {
        if (len < CARD_ID_MIN || len > CARD_ID_MAX) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        Util.arrayCopy(buf, off, cardId, (short) 0, len);
        cardIdLength = (byte) len;
    }

    /** Writes the card identity (install tag C1) at off; returns its length (0: none). */
    public short getCardId(byte[] buf, short off) {
        Util.arrayCopyNonAtomic(cardId, (short) 0, buf, off, cardIdLength);
        return cardIdLength;
    }

    /**
     * After ISSUE the key set has no use left: K-ENC and K-MAC are cleared (the card keeps
     * its key version, card id and counter, so plain personalization stays refused and
     * the FCI says what happened). Idempotent: also called at selection, to complete an
     * erasure a tear interrupted right after ISSUE's transaction.
     */
    public void eraseKeySet() {
        if (encKey.isInitialized()) {
            encKey.clearKey();
        }
        if (macKey.isInitialized()) {
            macKey.clearKey();
        }
    }

    /** True when the installed key set was erased (eraseKeySet). */
    public boolean isErased() {
        return keysInstalled && !encKey.isInitialized();
    }

    /** True when a key set was installed: plain personalization is then refused. */
    public boolean isActive() {
        return keysInstalled;
    }

    /** The install parameters are consistent: no key set, or a key set with a card id. */
    public boolean isComplete() {
        return !keysInstalled || cardIdLength != 0;
    }

    /** FCI data objects 8A (card id) and 8B (key version || last counter); returns the new offset. */
    public short appendFci(byte[] buf, short off) {
        if (!keysInstalled) {
            return off;
        }
        buf[off++] = FCI_TAG_CARD_ID;
        buf[off++] = cardIdLength;
        off = Util.arrayCopyNonAtomic(cardId, (short) 0, buf, off, cardIdLength);
        buf[off++] = FCI_TAG_STATE;
        buf[off++] = (byte) (1 + COUNTER_LENGTH);
        buf[off++] = keyVersion;
        return Util.arrayCopyNonAtomic(lastCounter, (short) 0, buf, off, COUNTER_LENGTH);
    }

    // ---------------------------------------------------------------- processing

    /**
     * Unwraps, checks and applies one secured command whose whole data field (after
     * chaining or extended length) is buf[off..off+len). The plain data is decrypted in
     * place. Writes the response data and the 8-byte receipt to out[outOff..] and returns
     * their length.
     */
    public short process(byte ins, byte p1, byte p2, byte[] buf, short off, short len,
                         Target target, byte[] out, short outOff) {
        try {
            // 1. structure: KVN || CNTR || 16n bytes (n >= 1) || MAC
            if (len < MIN_SECURED || (short) ((short) (len - MIN_SECURED) % BLOCK) != 0) {
                ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
            }
            // 2. key version (a development card has no key set; an issued card erased it)
            if (!keysInstalled || isErased() || buf[off] != keyVersion) {
                ISOException.throwIt(SW_KEY_VERSION_NOT_FOUND);
            }
            short cntrOff = (short) (off + 1);
            short cryptoOff = (short) (cntrOff + COUNTER_LENGTH);
            short cryptoLen = (short) (len - 1 - COUNTER_LENGTH - MAC_LENGTH);
            short macOff = (short) (cryptoOff + cryptoLen);
            // 3. MAC over 84 INS P1 P2 || KVN || CNTR || CRYPTOGRAM, before anything else
            scratch[S_IV] = CLA_SECURED;
            scratch[(short) (S_IV + 1)] = ins;
            scratch[(short) (S_IV + 2)] = p1;
            scratch[(short) (S_IV + 3)] = p2;
            cmacBegin();
            cmacFeed(scratch, S_IV, (short) 4);
            cmacFeed(buf, off, (short) (macOff - off));
            cmacEnd();
            if (!macEquals(buf, macOff)) {
                ISOException.throwIt(SW_SM_INCORRECT);
            }
            // 4. counter strictly above the last accepted one
            if (!counterAbove(buf, cntrOff)) {
                ISOException.throwIt(SW_COUNTER_NOT_HIGHER);
            }
            // 5. decrypt in place, check the padding
            short plainLen = decrypt(buf, cntrOff, cryptoOff, cryptoLen);
            // 6. work that must stay outside the transaction (key generation)
            target.preparePersonalization(ins, p1, p2, buf, cryptoOff, plainLen, out, outOff);
            // 7. apply and remember the counter, atomically
            short responseLen;
            JCSystem.beginTransaction();
            try {
                responseLen = target.applyPersonalization(ins, p1, p2, buf, cryptoOff, plainLen, out, outOff);
                Util.arrayCopy(buf, cntrOff, lastCounter, (short) 0, COUNTER_LENGTH);
                JCSystem.commitTransaction();
            } catch (RuntimeException e) {
                if (JCSystem.getTransactionDepth() != 0) {
                    JCSystem.abortTransaction();
                }
                throw e;
            }
            return (short) (responseLen + receipt(ins, p1, p2, out, outOff, responseLen));
        } finally {
            // the CBC-MAC state, the subkeys derived from K-MAC and the IV derived from
            // K-ENC live for this command only, refused or not (CLEAR_ON_DESELECT alone
            // would keep them until the next deselection)
            clearScratch();
        }
    }

    private void clearScratch() {
        Util.arrayFillNonAtomic(scratch, (short) 0, SCRATCH_LENGTH, (byte) 0);
        fill[0] = 0;
    }

    /**
     * 00 INS P1 P2 || KVN || CNTR || response data || 90 00, MACed: proof of execution for
     * the issuer, and proof that the response data out[outOff..+responseLen) comes from this
     * card. Written right after the response data.
     */
    private short receipt(byte ins, byte p1, byte p2, byte[] out, short outOff, short responseLen) {
        scratch[S_IV] = 0x00;
        scratch[(short) (S_IV + 1)] = ins;
        scratch[(short) (S_IV + 2)] = p1;
        scratch[(short) (S_IV + 3)] = p2;
        scratch[(short) (S_IV + 4)] = keyVersion;
        Util.arrayCopyNonAtomic(lastCounter, (short) 0, scratch, (short) (S_IV + 5), COUNTER_LENGTH);
        scratch[(short) (S_IV + 10)] = (byte) 0x90;
        scratch[(short) (S_IV + 11)] = 0x00;
        cmacBegin();
        cmacFeed(scratch, S_IV, (short) 10);
        cmacFeed(out, outOff, responseLen);
        cmacFeed(scratch, (short) (S_IV + 10), (short) 2);
        cmacEnd();
        Util.arrayCopyNonAtomic(scratch, S_STATE, out, (short) (outOff + responseLen), RECEIPT_LENGTH);
        return RECEIPT_LENGTH;
    }

    private boolean counterAbove(byte[] buf, short cntrOff) {
        for (short i = 0; i < COUNTER_LENGTH; i++) {
            short a = (short) (buf[(short) (cntrOff + i)] & 0xFF);
            short b = (short) (lastCounter[i] & 0xFF);
            if (a != b) {
                return a > b;
            }
        }
        return false;
    }

    /** Decrypts buf[cryptoOff..+cryptoLen) in place; returns the unpadded length or 6988. */
    private short decrypt(byte[] buf, short cntrOff, short cryptoOff, short cryptoLen) {
        Util.arrayFillNonAtomic(scratch, S_BLOCK, (short) (BLOCK - COUNTER_LENGTH), (byte) 0);
        Util.arrayCopyNonAtomic(buf, cntrOff, scratch, (short) (S_BLOCK + BLOCK - COUNTER_LENGTH), COUNTER_LENGTH);
        cipher.init(encKey, Cipher.MODE_ENCRYPT);
        cipher.doFinal(scratch, S_BLOCK, BLOCK, scratch, S_IV);
        cipher.init(encKey, Cipher.MODE_DECRYPT, scratch, S_IV, BLOCK);
        cipher.doFinal(buf, cryptoOff, cryptoLen, buf, cryptoOff);
        // ISO/IEC 9797-1 method 2: 80 followed by at most 15 zero bytes
        short end = (short) (cryptoOff + cryptoLen);
        short limit = (short) (end - BLOCK);
        for (short i = (short) (end - 1); i >= limit; i--) {
            byte b = buf[i];
            if (b == (byte) 0x80) {
                return (short) (i - cryptoOff);
            }
            if (b != 0) {
                break;
            }
        }
        ISOException.throwIt(SW_SM_INCORRECT);
        return 0;
    }

    // ---------------------------------------------------------------- AES-CMAC (SP 800-38B)
    // CBC-MAC one block at a time: each doFinal of a single block with a zero IV is a
    // plain AES block encryption, so no card-specific buffering in update() matters.

    private void cmacBegin() {
        cipher.init(macKey, Cipher.MODE_ENCRYPT);
        Util.arrayFillNonAtomic(scratch, S_STATE, BLOCK, (byte) 0);
        // L = AES(K-MAC, 0^128) into S_SUBKEY (subkeys are derived in cmacEnd)
        cipher.doFinal(scratch, S_STATE, BLOCK, scratch, S_SUBKEY);
        fill[0] = 0;
    }

    /** Feeds message bytes; a full block is chained only once more data follows it. */
    private void cmacFeed(byte[] in, short off, short len) {
        while (len > 0) {
            if (fill[0] == BLOCK) {
                chainBlock();
                fill[0] = 0;
            }
            short n = (short) (BLOCK - fill[0]);
            if (n > len) {
                n = len;
            }
            Util.arrayCopyNonAtomic(in, off, scratch, (short) (S_BLOCK + fill[0]), n);
            fill[0] += n;
            off += n;
            len -= n;
        }
    }

    /** Last block: complete -> XOR K1; partial -> pad 80 00.., XOR K2. Tag in S_STATE. */
    private void cmacEnd() {
        short used = fill[0];
        shiftSubkey();
        if (used != BLOCK) {
            scratch[(short) (S_BLOCK + used)] = (byte) 0x80;
            Util.arrayFillNonAtomic(scratch, (short) (S_BLOCK + used + 1), (short) (BLOCK - used - 1), (byte) 0);
            shiftSubkey();
        }
        for (short i = 0; i < BLOCK; i++) {
            scratch[(short) (S_BLOCK + i)] ^= scratch[(short) (S_SUBKEY + i)];
        }
        chainBlock();
    }

    /** state = AES(K-MAC, state XOR block) */
    private void chainBlock() {
        for (short i = 0; i < BLOCK; i++) {
            scratch[(short) (S_STATE + i)] ^= scratch[(short) (S_BLOCK + i)];
        }
        cipher.doFinal(scratch, S_STATE, BLOCK, scratch, S_STATE);
    }

    /** Subkey doubling in GF(2^128): shift left one bit, XOR 87 into the last byte on carry. */
    private void shiftSubkey() {
        byte carry = 0;
        for (short i = (short) (S_SUBKEY + BLOCK - 1); i >= S_SUBKEY; i--) {
            byte b = scratch[i];
            scratch[i] = (byte) ((b << 1) | carry);
            carry = (byte) ((b >> 7) & 1);
        }
        if (carry != 0) {
            scratch[(short) (S_SUBKEY + BLOCK - 1)] ^= CMAC_RB;
        }
    }

    /** Compares the computed MAC with buf[macOff..+8) without an early exit. */
    private boolean macEquals(byte[] buf, short macOff) {
        byte diff = 0;
        for (short i = 0; i < MAC_LENGTH; i++) {
            diff |= (byte) (scratch[(short) (S_STATE + i)] ^ buf[(short) (macOff + i)]);
        }
        return diff == 0;
    }
}

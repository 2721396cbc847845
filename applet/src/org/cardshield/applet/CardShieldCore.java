package org.cardshield.applet;

import javacard.framework.APDU;
import javacard.framework.APDUException;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.SystemException;
import javacard.framework.TransactionException;
import javacard.security.CryptoException;

/**
 * CardShield: the "card shield" of patent CN101938520A on a Java Card 3.0.4 Classic card.
 * On-card RSA key generation, a certificate store and PIN-protected payment signatures.
 * This class only installs, selects and routes; state lives in Persistent (EEPROM),
 * Transients (RAM) and Crypto, I/O in Io, and each command family in its own handler.
 * docs/apdu.md is the normative description of every command.
 *
 * The applet class itself is CardShieldApplet, one per build variant (docs/applet.md,
 * "Build variants"): the default one adds javacardx.apdu.ExtendedLength, the SIM one
 * (applet/variants/sim) does not, so its CAP imports no javacardx.apdu. Everything else
 * is this class and is the same in both.
 */
public abstract class CardShieldCore extends Applet implements SecureChannel.Target {
    private static final byte TAG_MAX_CERTIFICATE = (byte) 0x80;

    private final Persistent state;
    private final Transients t;
    private final Io io;
    private final Fci fci;
    private final PinHandler pins;
    private final KeyHandler keys;
    private final CertificateStore certificates;
    private final SecurityOperations securityOperations;
    private final TransactionSigner signer;
    private final Personalization personalization;
    private final Attestation attestation;
    private final SecureChannel secureChannel;

    protected CardShieldCore(byte[] params, short paramsOff, short paramsLen) {
        // parse before allocating anything: bad parameters fail the install cleanly
        short end = (short) (paramsOff + paramsLen);
        short maxCertificate = Constants.DEFAULT_MAX_CERT;
        short keySet = (short) -1;
        short keySetLen = 0;
        short cardId = (short) -1;
        short cardIdLen = 0;
        short p = paramsOff;
        while (p < end) {
            byte tag = params[p];
            short len = Tlv.length(params, (short) (p + 1), end);
            short value = Tlv.valueOffset(params, (short) (p + 1), end);
            if (tag == TAG_MAX_CERTIFICATE && len == 2) {
                maxCertificate = javacard.framework.Util.getShort(params, value);
                if (maxCertificate < Constants.MIN_MAX_CERT || maxCertificate > Constants.MAX_MAX_CERT) {
                    ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                }
            } else if (tag == SecureChannel.TAG_KEY_SET) {
                keySet = value;
                keySetLen = len;
            } else if (tag == SecureChannel.TAG_CARD_ID) {
                cardId = value;
                cardIdLen = len;
            } else {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            p = (short) (value + len);
        }
        Crypto crypto = new Crypto();
        secureChannel = new SecureChannel();
        if (keySet >= 0) {
            secureChannel.installKeySet(params, keySet, keySetLen);
        }
        if (cardId >= 0) {
            secureChannel.installCardId(params, cardId, cardIdLen);
        }
        if (!secureChannel.isComplete()) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA); // a key set needs its card identity
        }
        state = new Persistent(maxCertificate);
        // RSA-2048 key objects for both slots at install: ISSUE's default and the usual
        // configuration, so personalization allocates nothing and a tear there loses no memory
        state.slot1.keyPair = crypto.buildKeyPair(Constants.ALG_RSA_2048);
        state.slot2.keyPair = crypto.buildKeyPair(Constants.ALG_RSA_2048);
        // command data of the largest operation: 8E/DECIPHER/VERIFY inputs plus their output;
        // an RSA signature needs out + 2 * modulus + RsaSigner.HASH_ROOM (out up to 214: ATTEST)
        t = new Transients((short) (2 * crypto.maxModulusBytes() + 256 + RsaSigner.HASH_ROOM));
        io = new Io(t);
        fci = new Fci(state, crypto, t, secureChannel);
        pins = new PinHandler(state, t);
        keys = new KeyHandler(state, t, crypto);
        certificates = new CertificateStore(state, t, io, crypto);
        securityOperations = new SecurityOperations(state, t, crypto);
        signer = new TransactionSigner(state, t, crypto);
        personalization = new Personalization(state, crypto);
        attestation = new Attestation(state, t, crypto, keys, secureChannel);
    }

    /**
     * GlobalPlatform INSTALL [for install] data: Li AID || Lc control || La applet data (TLVs).
     * Returns the offset of the applet data (the end of bArray's part when there is none);
     * its length is appletDataLength().
     */
    protected static short appletDataOffset(byte[] bArray, short bOffset, byte bLength) {
        short aidLen = (short) (bArray[bOffset] & 0xFF);
        short p = (short) (bOffset + 1 + aidLen);
        short end = (short) (bOffset + (bLength & 0xFF));
        if (p < end) {
            p = (short) (p + 1 + (bArray[p] & 0xFF)); // control information
            if (p < end) {
                short dataOff = (short) (p + 1);
                if ((short) (dataOff + (bArray[p] & 0xFF)) > end) {
                    ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
                }
                return dataOff;
            }
        }
        return end;
    }

    /** The applet data's length, for appletDataOffset()'s result. */
    protected static short appletDataLength(byte[] bArray, short bOffset, byte bLength, short dataOff) {
        short end = (short) (bOffset + (bLength & 0xFF));
        return dataOff == end ? 0 : (short) (bArray[(short) (dataOff - 1)] & 0xFF);
    }

    /**
     * Every selection starts a new session: no PIN, no chain, no pending response, no EF.
     * It also completes an erasure the lifecycle demands that a tear interrupted.
     */
    public final boolean select() {
        state.pin.reset();
        state.puk.reset();
        t.clear();
        eraseWhatTheLifecycleEnded();
        return true;
    }

    /** The personalization key set after ISSUE, the private keys at TERMINATED. */
    private void eraseWhatTheLifecycleEnded() {
        if (state.lifecycle() != Constants.LIFECYCLE_PERSONALIZATION) {
            secureChannel.eraseKeySet();
        }
        state.eraseKeysIfTerminated();
    }

    /** PIN validity ends with the session: deselection (and card reset) clear it. */
    public final void deselect() {
        state.pin.reset();
        state.puk.reset();
    }

    /**
     * The one place of the command's I/O and of its end: the handler gets the complete
     * command data in t.buffer and returns its response length (data at t.buffer[0], or a
     * part Io.part() named); only here are Ne applied, 61xx given and the rest kept for GET
     * RESPONSE (Io.respond). Every exception becomes a defined status word (never 6F00),
     * and a failed command's state is dropped (open transaction, chain, pending response).
     * Whatever the end, the command's bytes are wiped (Io.wipeIncoming, Io.wipe).
     */
    public final void process(APDU apdu) {
        short sw;
        try {
            io.beginCommand();
            sw = io.respond(apdu, selectingApplet() ? fci.build() : dispatch(apdu));
        } catch (ISOException e) {
            sw = e.getReason();
        } catch (CryptoException e) {
            short reason = e.getReason();
            sw = reason == CryptoException.NO_SUCH_ALGORITHM ? ISO7816.SW_FUNC_NOT_SUPPORTED
                    : reason == CryptoException.UNINITIALIZED_KEY ? Constants.SW_REFERENCE_NOT_FOUND
                    : ISO7816.SW_WRONG_DATA;
        } catch (TransactionException e) {
            sw = Constants.SW_NOT_ENOUGH_MEMORY;
        } catch (APDUException e) {
            sw = ISO7816.SW_WRONG_LENGTH;
        } catch (SystemException e) {
            sw = e.getReason() == SystemException.NO_RESOURCE || e.getReason() == SystemException.NO_TRANSIENT_SPACE
                    ? Constants.SW_NOT_ENOUGH_MEMORY : ISO7816.SW_CONDITIONS_NOT_SATISFIED;
        } catch (RuntimeException e) {
            sw = ISO7816.SW_CONDITIONS_NOT_SATISFIED;
        }
        if (sw != ISO7816.SW_NO_ERROR && (short) (sw & (short) 0xFF00) != Constants.SW_BYTES_REMAINING_BASE) {
            cleanUp();
        }
        io.wipeIncoming(apdu); // a response already sent was preceded by it (Io.respond)
        io.wipe();
        if (sw != ISO7816.SW_NO_ERROR) {
            ISOException.throwIt(sw);
        }
    }

    /** After an error: no open transaction, no chain, no pending response. */
    private void cleanUp() {
        if (JCSystem.getTransactionDepth() != 0) {
            JCSystem.abortTransaction();
        }
        io.reset();
    }

    /** Checks the class byte and the chain, then runs the command; returns its response length. */
    private short dispatch(APDU apdu) {
        byte[] buf = apdu.getBuffer();
        byte cla = buf[ISO7816.OFFSET_CLA];
        byte ins = buf[ISO7816.OFFSET_INS];
        byte p1 = buf[ISO7816.OFFSET_P1];
        byte p2 = buf[ISO7816.OFFSET_P2];
        // ISO/IEC 7816-4 clause 5.4.1: the logical channel number is part of CLA (b1-b2 in the
        // first interindustry classes, b1-b4 in the further ones 40-7F; proprietary 80-FE
        // mirrors both). A phone's OMAPI opens the applet on a logical channel, so the
        // channel bits are dropped before the class is judged; the JCRE routed the APDU.
        boolean further = (byte) (cla & Constants.CLA_FURTHER_BIT) != 0;
        cla &= further ? Constants.CLA_NOT_CHANNEL_FURTHER : Constants.CLA_NOT_CHANNEL_FIRST;
        boolean chained = (byte) (cla & Constants.CLA_CHAINING_BIT) != 0;
        byte cls = (byte) (cla & ~Constants.CLA_CHAINING_BIT);
        byte smBits = further ? Constants.CLA_SECURE_MESSAGING_FURTHER : Constants.CLA_SECURE_MESSAGING_BITS;
        boolean secured = cls == SecureChannel.CLA_SECURED
                && (ins == Constants.INS_PERSONALIZE || ins == Constants.INS_ISSUE);
        if (!secured && (byte) (cls & smBits) != 0) {
            ISOException.throwIt(Constants.SW_SECURE_MESSAGING_UNSUPPORTED);
        }
        // the further classes 40-7F / C0-FE behave as 00 / 80 on another channel
        cls &= (byte) ~Constants.CLA_FURTHER_BIT;
        if (!secured && cls != Constants.CLA_ISO && cls != Constants.CLA_PROPRIETARY) {
            ISOException.throwIt(ISO7816.SW_CLA_NOT_SUPPORTED);
        }
        if (ins != Constants.INS_GET_RESPONSE) {
            io.discardResponse();
        }
        if (io.chainOpen() && !io.continuesChain(ins, p1, p2)) {
            io.reset();
            ISOException.throwIt(Constants.SW_LAST_COMMAND_EXPECTED);
        }
        if (secured) {
            return securedPersonalization(apdu, ins, p1, p2, chained);
        }
        if (cls == Constants.CLA_PROPRIETARY) {
            return dispatchProprietary(apdu, ins, p1, p2, chained);
        }
        return dispatchInterIndustry(apdu, ins, p1, p2, chained);
    }

    /**
     * Each command: its header checks (P1 P2, state: before any data is read, so a refused
     * chain ends at its first APDU), its data (Io.receive: complete, or 9000 while a chain
     * continues; Io.requireNoData for case 1 / 2), then the handler.
     */
    private short dispatchInterIndustry(APDU apdu, byte ins, byte p1, byte p2, boolean chained) {
        switch (ins) {
            case Constants.INS_SELECT:
                if (p1 == (byte) 0x04) {
                    // SELECT by DF name of another application while this one is selected
                    ISOException.throwIt(ISO7816.SW_FILE_NOT_FOUND);
                }
                certificates.checkSelect(p1, p2, chained);
                return certificates.selectFile(p2, io.receive(apdu, false, (short) 2));
            case Constants.INS_READ_BINARY:
                io.requireNoData(apdu, chained);
                return certificates.readBinary(p1, p2);
            case Constants.INS_PUT_DATA:
                KeySlot slot = certificates.checkPutData(p1, p2);
                certificates.putData(slot, io.receiveInto(apdu, chained, state.staging, state.maxCertificate,
                        Constants.SW_NOT_ENOUGH_MEMORY));
                return 0;
            case Constants.INS_VERIFY:
                if (pins.checkVerify(p1, p2)) {
                    pins.verify(io.receive(apdu, chained, Constants.PIN_MAX));
                } else {
                    io.requireNoData(apdu, chained);
                    pins.logout();
                }
                return 0;
            case Constants.INS_CHANGE_REFERENCE_DATA:
                pins.checkChangeReferenceData(p1, p2);
                pins.changeReferenceData(p2, io.receive(apdu, chained, PinHandler.CHANGE_LENGTH));
                return 0;
            case Constants.INS_RESET_RETRY_COUNTER:
                pins.checkResetRetryCounter(p1, p2);
                pins.resetRetryCounter(io.receive(apdu, chained, PinHandler.UNBLOCK_MAX));
                return 0;
            case Constants.INS_GENERATE_KEY_PAIR:
                KeySlot keySlot = keys.check(p1, p2);
                io.requireNoData(apdu, chained);
                return keys.generateOrRead(p1, keySlot);
            case Constants.INS_MSE:
                securityOperations.checkSecurityEnvironment(p1, p2);
                securityOperations.manageSecurityEnvironment(p2, io.receive(apdu, chained, (short) t.buffer.length));
                return 0;
            case Constants.INS_PSO:
                short op = securityOperations.operation(p1, p2);
                return securityOperations.performSecurityOperation(op, io.receive(apdu, chained, (short) t.buffer.length));
            case Constants.INS_GET_RESPONSE:
                io.requireNoData(apdu, chained);
                if (p1 != 0 || p2 != 0) {
                    ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
                }
                return io.pendingResponse();
            default:
                refuse(ins);
                return 0;
        }
    }

    private short dispatchProprietary(APDU apdu, byte ins, byte p1, byte p2, boolean chained) {
        switch (ins) {
            case Constants.INS_SIGN_TRANSACTION:
                return signer.signTransaction(p1, p2, io.receive(apdu, chained, (short) t.buffer.length));
            case Constants.INS_PROVE_POSSESSION:
                return signer.provePossession(p1, p2, io.receive(apdu, chained, Constants.CHALLENGE_MAX));
            case Constants.INS_ATTEST:
                return attestation.attest(p1, p2, io.receive(apdu, chained, Constants.CHALLENGE_MAX));
            case Constants.INS_PERSONALIZE:
                if (p1 == Attestation.P1_KEY || p1 == Attestation.P1_CERTIFICATE) {
                    // an attestation key the issuer did not get authenticated is worthless
                    ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
                }
                requirePlainPersonalizationAllowed();
                short len = io.receive(apdu, chained, (short) t.buffer.length);
                personalization.personalize(p1, p2, t.buffer, (short) 0, len);
                return 0;
            case Constants.INS_ISSUE:
                io.requireNoData(apdu, chained);
                if (p1 != 0 || p2 != 0) {
                    ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
                }
                requirePlainPersonalizationAllowed();
                personalization.issuePlain();
                return 0;
            default:
                refuse(ins);
                return 0;
        }
    }

    /** Plain personalization only on a development card (no key set C0 installed). */
    private void requirePlainPersonalizationAllowed() {
        personalization.requirePersonalizationState();
        if (secureChannel.isActive()) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
    }

    /**
     * CLA 84 PERSONALIZE / ISSUE: SecureChannel unwraps in place, then calls
     * applyPersonalization; the response (data and receipt) is written after the command.
     */
    private short securedPersonalization(APDU apdu, byte ins, byte p1, byte p2, boolean chained) {
        short len = io.receive(apdu, chained, (short) t.buffer.length);
        short receipt = secureChannel.process(ins, p1, p2, t.buffer, (short) 0, len, this, t.buffer, len);
        if (ins == Constants.INS_ISSUE) {
            secureChannel.eraseKeySet(); // after the receipt, which needed K-MAC
        }
        return t.response(len, receipt);
    }

    /**
     * SecureChannel.Target: before the transaction, the work that must not be journalled:
     * the attestation key is generated, key objects are allocated, the server key is set.
     */
    public void preparePersonalization(byte ins, byte p1, byte p2, byte[] data, short off, short len,
                                       byte[] out, short outOff) {
        if (ins == Constants.INS_ISSUE) {
            if (p1 == 0 && p2 == 0 && len == 0) { // else refused by applyPersonalization
                personalization.prepareIssue();
            }
        } else if (p1 == Attestation.P1_KEY) {
            attestation.prepareKey(p2, len, outOff);
        } else if (p1 != Attestation.P1_CERTIFICATE) {
            personalization.prepare(p1, p2, data, off, len);
        }
    }

    /** SecureChannel.Target: the one entry point of personalization, plain data already unwrapped. */
    public short applyPersonalization(byte ins, byte p1, byte p2, byte[] data, short off, short len,
                                      byte[] out, short outOff) {
        if (ins == Constants.INS_ISSUE) {
            if (p1 != 0 || p2 != 0) {
                ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
            }
            if (len != 0) {
                ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
            }
            personalization.issue();
        } else if (p1 == Attestation.P1_KEY) {
            return attestation.applyKey(out, outOff);
        } else if (p1 == Attestation.P1_CERTIFICATE) {
            attestation.applyCertificatePart(p2, data, off, len, out, outOff);
        } else {
            personalization.apply(p1, p2, data, off, len);
        }
        return 0;
    }

    /** An INS of the other class is a class error (6E00), an unknown one 6D00. */
    private static void refuse(byte ins) {
        switch (ins) {
            case Constants.INS_SELECT:
            case Constants.INS_READ_BINARY:
            case Constants.INS_PUT_DATA:
            case Constants.INS_VERIFY:
            case Constants.INS_CHANGE_REFERENCE_DATA:
            case Constants.INS_RESET_RETRY_COUNTER:
            case Constants.INS_GENERATE_KEY_PAIR:
            case Constants.INS_MSE:
            case Constants.INS_PSO:
            case Constants.INS_GET_RESPONSE:
            case Constants.INS_SIGN_TRANSACTION:
            case Constants.INS_PROVE_POSSESSION:
            case Constants.INS_ATTEST:
            case Constants.INS_PERSONALIZE:
            case Constants.INS_ISSUE:
                ISOException.throwIt(ISO7816.SW_CLA_NOT_SUPPORTED);
                return;
            default:
                ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
    }
}

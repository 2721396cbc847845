// Enrollment (patent figure 5, steps 501-512) through the local card agent.
"use strict";

const ENROLL_STEPS = [
  ["501", "Apply to the bank for a certificate"],
  ["502", "Bank sends the key-pair generation request"],
  ["503", "Terminal passes it to the card (PIN asked in the CardShield window)"],
  ["504", "Card generates the key pair (a few seconds on a real card)"],
  ["505", "Card returns its status and public key"],
  ["506", "Terminal uploads them; the bank checks the key"],
  ["507", "Bank asks the card to prove it holds the key"],
  ["508", "Terminal passes the request to the card"],
  ["509", "Card returns its public key, signed challenge and attestation"],
  ["510", "Bank verifies the proof and the card's attestation, and issues the certificate"],
  ["511", "Bank sends the certificate"],
  ["512", "Certificate stored on the card and read back"],
];

CardAgent.connect(() => { $("enroll-button").disabled = false; });

$("enroll-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const user = $("user-id").value.trim();
  const code = $("activation-code").value.trim();
  $("activation-code").value = "";  // single use: not kept on the page
  CardAgent.openDialog();
  $("progress").hidden = false;
  $("enroll-button").disabled = true;
  Steps.render($("steps"), ENROLL_STEPS);
  showNotice("waiting", "Working with your card\u2026");
  CardAgent.start("enroll", user, { activation_code: code });
});

CardAgent.on("progress", (event) => Steps.done(event));
CardAgent.on("question", (message) => {
  showNotice("waiting", "Your card terminal asks you to " + message.action +
    (message.pin_needed ? ": enter your PIN in the CardShield window." : ": answer in the CardShield window."), true);
});
CardAgent.on("done", (message) => {
  const serial = message.state.certificate_serial;
  Remembered.add("serial", serial);  // the status page asks the bank about this certificate
  showNotice("success", "Done: certificate " + serial + " is stored on your card (" + message.relayed +
    " card commands, " + message.seconds.toFixed(1) + " s). You can now pay with it.");
  const link = document.createElement("a");
  link.href = "/status";
  link.textContent = " See your card and payments";
  $("notice").appendChild(link);
  $("enroll-button").disabled = false;
});
CardAgent.on("failed", (message) => {
  Steps.fail();
  showNotice("failure", "Enrollment failed: " + message.message);
  $("enroll-button").disabled = false;
});

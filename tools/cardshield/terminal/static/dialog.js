// The agent's PIN and consent dialog: polls the agent (same origin) for the question the
// card holder must answer and posts the answer back. The PIN leaves this page only to
// the agent on 127.0.0.1, which presents it to the card.
"use strict";
const $ = (id) => document.getElementById(id);
let current = null;
let sent = null;

function show(question) {
  current = question;
  $("idle").hidden = true;
  $("question").hidden = false;
  $("server").textContent = question.server || "the bank";
  $("action").textContent = question.payment ? "Authorize this payment?" :
    "Allow the bank to " + question.action + "?";
  $("payment").hidden = !question.payment;
  if (question.payment) {
    $("amount").textContent = question.payment.amount;
    $("payee").textContent = question.payment.payee;
    $("order").textContent = question.payment.order_ref;
  }
  $("signed-note").hidden = !(question.payment && question.payment.server_signed);
  $("weaker").hidden = !question.weaker_signing;
  $("tries").hidden = question.tries_left === null && !question.problem;
  if (question.tries_left !== null) {
    $("tries").textContent = "Wrong PIN. " + question.tries_left +
      (question.tries_left === 1 ? " try" : " tries") + " left before the PIN is blocked.";
  } else if (question.problem) {
    $("tries").textContent = question.problem;
  }
  $("pin-label").hidden = !question.pin_needed;
  $("pin").required = question.pin_needed;
  $("pin").value = "";
  $("approve").textContent = question.pin_needed ? "Approve with PIN" : "Approve";
  if (question.pin_needed) { $("pin").focus(); }
}

function idle(text) {
  current = null;
  $("question").hidden = true;
  $("idle").hidden = false;
  $("idle-text").textContent = text;
}

async function answer(approved) {
  if (!current) { return; }
  const body = { id: current.id, approved: approved, pin: approved ? $("pin").value : null };
  $("pin").value = "";
  sent = current.id;
  idle(approved ? "Sent to your card. You can follow the progress in the shop's page." : "Cancelled.");
  await fetch("/dialog/answer", { method: "POST", headers: { "Content-Type": "application/json" },
                                  body: JSON.stringify(body) });
}

async function poll() {
  try {
    const response = await fetch("/dialog/question", { cache: "no-store" });
    const body = await response.json();
    const question = body.question;
    if (question && question.id !== sent && (!current || current.id !== question.id)) { show(question); }
    if (!question && current) { idle("The request was withdrawn."); }
  } catch (error) {
    idle("The CardShield agent is not running any more.");
  }
  setTimeout(poll, 300);
}

$("question").addEventListener("submit", (event) => { event.preventDefault(); answer(true); });
$("decline").addEventListener("click", () => answer(false));
poll();

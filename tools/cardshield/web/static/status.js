// The certificates and payments made from this browser, from the bank. The page asks by
// the serials and payment ids this browser kept (remembered.js): the bank lists nothing by
// user id, so nobody can see someone else's payments by typing a name.
"use strict";
const $ = (id) => document.getElementById(id);

const STATE_TEXT = {
  authorized: "authorized", refused: "refused", expired: "expired", created: "not started",
  cert_requested: "not completed", sign_requested: "not signed",
  active: "active", pending_store: "being stored", revoked: "revoked",
};

function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }

function row(tbody, cells, stateIndex, state) {
  const tr = document.createElement("tr");
  cells.forEach((text, index) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (index === stateIndex) { td.className = "state-" + state; }
    tr.appendChild(td);
  });
  tbody.appendChild(tr);
  return tr;
}

function notice(kind, text) {
  const box = $("notice");
  box.className = "notice " + kind; box.textContent = text; box.hidden = false;
}

async function show() {
  const serials = Remembered.list("serial"), paymentIds = Remembered.list("payment");
  $("certificates-card").hidden = $("payments-card").hidden = true;
  $("forget-button").disabled = !serials.length && !paymentIds.length;
  if ($("forget-button").disabled) {
    notice("", "Nothing was done from this browser yet: enroll your card or pay in the shop, and it shows here.");
    return;
  }
  const query = new URLSearchParams();
  serials.forEach((serial) => query.append("serial", serial));
  paymentIds.forEach((id) => query.append("payment", id));
  const response = await fetch("/web/status?" + query);
  const body = await response.json();
  if (!response.ok) { notice("failure", body.error.message); return; }
  $("notice").hidden = !body.blocked;
  if (body.blocked) { notice("failure", "This account is blocked after too many failures."); }
  $("certificates").innerHTML = "";
  for (const c of body.certificates) {
    row($("certificates"), [c.serial, c.slot === 1 ? "payment" : "authentication", STATE_TEXT[c.status] || c.status,
      when(c.not_after), when(c.issued_at)], 2, c.status);
  }
  if (!body.certificates.length) { row($("certificates"), ["No certificate enrolled from this browser.", "", "", "", ""]); }
  $("payments").innerHTML = "";
  for (const p of body.payments) {
    const status = (STATE_TEXT[p.state] || p.state) + (p.refusal_code ? " (" + p.refusal_code.replace(/_/g, " ") + ")" : "");
    const tr = row($("payments"), [when(p.authorized_at || p.created_at), p.order_ref, p.payee, p.amount, status], 4, p.state);
    tr.cells[3].className = "num";
  }
  if (!body.payments.length) { row($("payments"), ["No payments made from this browser.", "", "", "", ""]); }
  $("certificates-card").hidden = $("payments-card").hidden = false;
}

$("forget-button").addEventListener("click", () => { Remembered.forget(); show(); });
show();

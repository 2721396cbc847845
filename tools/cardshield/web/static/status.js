// The card holder's certificates and payments, from the bank.
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

async function show(user) {
  const response = await fetch("/web/status?user_id=" + encodeURIComponent(user));
  const body = await response.json();
  const notice = $("notice");
  if (!response.ok) {
    notice.className = "notice failure"; notice.hidden = false; notice.textContent = body.error.message;
    $("certificates-card").hidden = $("payments-card").hidden = true;
    return;
  }
  notice.hidden = !body.blocked;
  if (body.blocked) { notice.className = "notice failure"; notice.textContent = "This account is blocked after too many failures."; }
  $("certificates").innerHTML = "";
  for (const c of body.certificates) {
    row($("certificates"), [c.serial, c.slot === 1 ? "payment" : "authentication", STATE_TEXT[c.status] || c.status,
      when(c.not_after), when(c.issued_at)], 2, c.status);
  }
  if (!body.certificates.length) { row($("certificates"), ["No certificate yet: enroll your card.", "", "", "", ""]); }
  $("payments").innerHTML = "";
  for (const p of body.payments) {
    const status = (STATE_TEXT[p.state] || p.state) + (p.refusal_code ? " (" + p.refusal_code.replace(/_/g, " ") + ")" : "");
    const tr = row($("payments"), [when(p.authorized_at || p.created_at), p.order_ref, p.payee, p.amount, status], 4, p.state);
    tr.cells[3].className = "num";
  }
  if (!body.payments.length) { row($("payments"), ["No payments yet.", "", "", "", ""]); }
  $("certificates-card").hidden = $("payments-card").hidden = false;
}

$("status-form").addEventListener("submit", (event) => { event.preventDefault(); show($("user-id").value.trim()); });
const initial = new URLSearchParams(location.search).get("user");
if (initial) { $("user-id").value = initial; show(initial); }

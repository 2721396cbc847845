// Checkout (patent figure 6, steps 601-608): the shop's server prices the basket and asks
// the bank for a payment; the card agent then has the card sign it.
"use strict";

// In the order they happen: the bank sends 601 and 605 in one batch and checks 604 and
// 608 in one step when the card's answers arrive.
const PAY_STEPS = [
  ["601", "Bank asks for your card's certificate (its fingerprint)"],
  ["605", "Bank sends the payment to sign (amount, shop, one-time nonce)"],
  ["602", "Terminal passes the request to the card"],
  ["603", "Card returns its certificate's fingerprint"],
  ["606", "You confirm the payment with your PIN in the CardShield window"],
  ["607", "Card signs and returns the signature"],
  ["604", "Bank checks the certificate is yours, valid and not revoked"],
  ["608", "Bank verifies the signature and authorizes the payment"],
];

function formatMinor(minor) { return (minor / 100).toFixed(2) + " " + CardAgent.config.currency; }

function updateTotal() {
  let total = 0;
  for (const item of CardAgent.config.catalog) {
    total += item.price_minor * (parseInt($("qty-" + item.id).value, 10) || 0);
  }
  $("total").textContent = formatMinor(total);
  return total;
}

CardAgent.connect(() => { $("pay-button").disabled = false; }).then((config) => {
  for (const item of config.catalog) {
    const row = document.createElement("tr");
    row.innerHTML = '<td></td><td class="num"></td><td class="num"><input type="number" min="0" max="20"></td>';
    row.cells[0].textContent = item.title;
    row.cells[1].textContent = item.price;
    const input = row.querySelector("input");
    input.id = "qty-" + item.id;
    input.value = item.id === "beans" ? 2 : 0;
    input.setAttribute("aria-label", "Quantity of " + item.title);
    input.addEventListener("input", updateTotal);
    $("basket").appendChild(row);
  }
  updateTotal();
});

$("order-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  CardAgent.openDialog();  // in the click itself, so the browser allows the window
  const quantities = {};
  for (const item of CardAgent.config.catalog) {
    const quantity = parseInt($("qty-" + item.id).value, 10) || 0;
    if (quantity) { quantities[item.id] = quantity; }
  }
  $("progress").hidden = false;
  $("pay-button").disabled = true;
  Steps.render($("steps"), PAY_STEPS);
  showNotice("waiting", "Creating the order\u2026");
  const response = await fetch("/web/orders", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: $("user-id").value.trim(), quantities: quantities }),
  });
  const order = await response.json();
  if (!response.ok) {
    Steps.fail();
    showNotice("failure", "The order was not accepted: " + order.error.message);
    $("pay-button").disabled = false;
    return;
  }
  Remembered.add("payment", order.payment_id);  // shown on the status page, whatever its outcome
  $("order-ref").textContent = order.order_ref + " \u2013 " + order.amount;
  showNotice("waiting", "Order " + order.order_ref + " for " + order.amount + ": working with your card\u2026");
  CardAgent.start("pay", order.payment_id);
});

CardAgent.on("progress", (event) => Steps.done(event));
CardAgent.on("question", (message) => {
  showNotice("waiting", "Check the amount and the shop in the CardShield window and " +
    (message.pin_needed ? "enter your PIN there." : "approve there."), true);
});
CardAgent.on("done", (message) => {
  const state = message.state;
  showNotice("success", "Payment authorized: " + formatMinor(state.amount_minor) + " to " + state.payee +
    " (order " + state.order_ref + ", card signature counter " + state.card_counter + ").");
  $("pay-button").disabled = false;
});
CardAgent.on("failed", (message) => {
  Steps.fail();
  showNotice("failure", "Payment not made: " + message.message);
  $("pay-button").disabled = false;
});

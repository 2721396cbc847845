// Shared by the pages: the connection to the local CardShield agent and the step list.
// The agent listens on ws://127.0.0.1 and accepts this page's origin only. It asks for
// the PIN in a window of its own (dialog_url); this page never sees the PIN.
"use strict";

const $ = (id) => document.getElementById(id);

function showNotice(kind, text, withDialogButton) {
  const box = $("notice");
  box.className = "notice " + kind;
  box.hidden = false;
  box.textContent = text;
  if (withDialogButton && CardAgent.dialogUrl) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Open the CardShield window";
    button.addEventListener("click", () => CardAgent.openDialog());
    box.appendChild(document.createElement("br"));
    box.appendChild(button);
  }
}

const CardAgent = {
  socket: null,
  dialogUrl: null,
  dialogWindow: null,
  handlers: {},

  async connect(onReady) {
    const config = await (await fetch("/web/config")).json();
    this.config = config;
    const status = $("agent-status");
    const socket = new WebSocket(config.agent_url);
    this.socket = socket;
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "ready") {
        this.dialogUrl = message.dialog_url;
        status.className = "agent ok";
        status.textContent = "Card terminal connected (CardShield agent on this computer).";
        onReady(config);
      }
      const handler = this.handlers[message.type];
      if (handler) { handler(message); }
    });
    const missing = () => {
      status.className = "agent missing";
      status.innerHTML = "The CardShield card terminal is not running on this computer, so the page cannot reach " +
        "your card. Start it with <code>./cardshield terminal</code> (or <code>cardshield terminal serve</code>) and reload this page.";
      document.querySelectorAll("button.needs-agent").forEach((b) => { b.disabled = true; });
    };
    socket.addEventListener("error", missing);
    socket.addEventListener("close", () => { if (!this.dialogUrl) { missing(); } });
    return config;
  },

  on(type, handler) { this.handlers[type] = handler; },

  // Called in the click handler itself, so the browser allows the window.
  openDialog() {
    if (this.dialogWindow && !this.dialogWindow.closed) { this.dialogWindow.focus(); return; }
    this.dialogWindow = window.open(this.dialogUrl, "cardshield-terminal", "popup,width=500,height=640");
  },

  // extra: {activation_code} for an enrollment (the agent sends it to the bank, nowhere else)
  start(kind, subject, extra) { this.socket.send(JSON.stringify({ type: kind, subject: subject, ...(extra || {}) })); },
};

const Steps = {
  render(list, steps) {
    list.innerHTML = "";
    for (const [number, title] of steps) {
      const item = document.createElement("li");
      item.id = "step-" + number;
      item.innerHTML = '<span class="no"></span><span class="text"></span><span class="time"></span>';
      item.querySelector(".no").textContent = number;
      item.querySelector(".text").textContent = title;
      list.appendChild(item);
    }
    this.list = list;
    this.pending = steps.map((step) => step[0]);
    if (this.pending.length) { $("step-" + this.pending[0]).className = "active"; }
  },

  done(event) {
    const item = $("step-" + event.step);
    if (!item) { return; }
    while (this.pending.length && this.pending[0] !== event.step) {
      $("step-" + this.pending.shift()).className = "done";
    }
    this.pending.shift();
    item.className = "done";
    item.title = event.text;  // the terminal's technical wording, on hover
    let time = event.seconds.toFixed(2) + " s";
    if (event.relayed) { time += " \u00b7 " + event.relayed + " APDUs"; }
    item.querySelector(".time").textContent = time;
    if (this.pending.length) { $("step-" + this.pending[0]).className = "active"; }
  },

  fail() {
    if (this.pending.length) { $("step-" + this.pending[0]).className = "failed"; }
  },
};

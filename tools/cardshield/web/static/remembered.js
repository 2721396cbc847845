// What this browser did, kept in its own localStorage: the serials of the certificates it
// enrolled and the ids of the payments it started, newest first. Both are random and
// unguessable, so holding one is what lets the status page ask the bank about it; the bank
// lists nothing by user id.
"use strict";

const Remembered = {
  LIMIT: 50,  // the bank answers at most 50 of each per request
  KEYS: { serial: "cardshield.serials", payment: "cardshield.payments" },

  list(kind) {
    try {
      const stored = JSON.parse(localStorage.getItem(this.KEYS[kind]) || "[]");
      return Array.isArray(stored) ? stored.filter((value) => typeof value === "string") : [];
    } catch (error) {
      return [];  // storage disabled or corrupted: behave as if nothing was done here
    }
  },

  add(kind, value) {
    const list = [value, ...this.list(kind).filter((old) => old !== value)].slice(0, this.LIMIT);
    try { localStorage.setItem(this.KEYS[kind], JSON.stringify(list)); } catch (error) { /* storage disabled */ }
  },

  forget() {
    for (const key of Object.values(this.KEYS)) { localStorage.removeItem(key); }
  },
};

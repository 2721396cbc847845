"""Structure-aware, seeded APDU fuzzer of the CardShield applet (`cardshield fuzz`).

spec       which status words docs/apdu.md allows for each command (parsed from the doc)
generator  the cases: valid commands of every kind, then mutated headers, lengths, TLVs,
           chains and sequences, all from one seeded random generator per case
model      what the card's persistent state must be after each answer, and the key-leak scan
runner     card profiles (lifecycle and PIN states), the campaign loop and its report
"""

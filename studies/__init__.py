"""Study protocols, blinded cases, seeded randomisation and the answer store."""

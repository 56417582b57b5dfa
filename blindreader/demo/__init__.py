"""The demo study: simulated k-space, two reconstructions, a blinded study, scripted or real
readers, and the analysis report. Everything in it is simulated and says so."""

#: First line of everything the demo writes or prints.
SIMULATED_NOTE = (
    "SIMULATED DATA: k-space simulated from the MNI152 template and read by scripted readers; "
    "not a clinical result."
)

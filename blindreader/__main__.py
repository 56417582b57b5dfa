"""``python -m blindreader`` runs the command line."""

from blindreader.cli import main

main()

"""The PySide6 reading workstation (the only package that imports Qt)."""

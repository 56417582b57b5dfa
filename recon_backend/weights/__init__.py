"""Model weights made by this project (see the JSON record beside each file)."""

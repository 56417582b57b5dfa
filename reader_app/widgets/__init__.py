"""Qt widgets of the reading workstation; they observe the reading state and call the controller."""

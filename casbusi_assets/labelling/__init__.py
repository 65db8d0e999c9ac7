"""Stage 5: crops out to a labelling tool (Labelbox), labels and masks back into a versioned archive."""

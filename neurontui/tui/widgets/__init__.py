"""One module per panel of the main screen."""

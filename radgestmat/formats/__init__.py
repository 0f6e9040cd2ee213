"""Display formats per language (``FORMAT_MODULE_PATH``): only where Django's own would mislead."""

"""Models of this app arrive with their issue; the app exists so the layout is whole."""

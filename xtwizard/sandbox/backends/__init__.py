"""One backend per Microsoft service, all over the one state model."""

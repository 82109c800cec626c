"""Client authentication run by the proxy itself: SCRAM (with channel binding) and the
cleartext password forms."""

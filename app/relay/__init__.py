"""The webhook relay: subscribe to a smee.io-style channel and replay its deliveries into our own ingress."""

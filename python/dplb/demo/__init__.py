"""The demo topology of DESIGN section 10 and the traffic the demo drives through it."""

# Hardware-free core of the insole firmware. See firmware/README.md.

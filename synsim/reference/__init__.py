"""Independent reference implementations of the NGAI model (Brian2: `synsim.reference.brian2`)."""

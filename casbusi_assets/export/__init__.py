"""The training export: patient-level, reproducible splits of every batch, written as an immutable
folder in the format CADBUSI-Training reads, with lineage from every exported file to its zip
member."""

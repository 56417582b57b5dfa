"""Raw k-space to conventional and AI reconstructions, written as DICOM with provenance."""

"""Post-processing: MP4 encoding and reading, posters, the generation record."""

"""Post-processing: frame interpolation (interpolate.py) and super-resolution (upscale.py), both
small trained networks shipped in weights/post/; MP4 encoding and reading, posters, the generation
record; the watermark."""

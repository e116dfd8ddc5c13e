"""Board profiles (pins by role), their validator, wiring diagrams and bills of materials.

- pins.py: each chip's GPIO rules as data (which pins exist, read only, touch-sense, are refused
  or warned about), with their sources;
- profile.py: finding and loading profiles (hardware/profiles/*.json), their pins by role;
- validate.py: schema and pin rules, every problem at once;
- boards.py, diagram.py: the reference boards' headers, the SVG wiring diagram and the CSV BOM.
See docs/hardware.md.
"""

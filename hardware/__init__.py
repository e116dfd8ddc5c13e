"""Board profiles (pins by role), their validator, wiring diagrams and bills of materials."""

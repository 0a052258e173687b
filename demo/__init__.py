"""`make demo`: the composition at the top of the house. It uses every tier and the audit, so it stands
above them (nothing imports it but its command)."""

# Battery level in % from the cell voltage of a single LiPo cell at rest.
#
# The table is a typical 3.7 V LiPo discharge curve at a light load (the insole draws
# a few tens of mA): flat between 3.7 and 3.9 V, so the level is a rough guide, not a
# fuel gauge. Integers only.
_CURVE_MV = (3400, 3610, 3690, 3710, 3730, 3750, 3770, 3790, 3800, 3820, 3840, 3850,
             3870, 3910, 3950, 3980, 4020, 4080, 4110, 4150, 4200)  # 0, 5, ... 100 %


def battery_percent(mv):
    """0..100 for a cell voltage in mV (clamped; linear between the table's points)."""
    curve = _CURVE_MV
    if mv <= curve[0]:
        return 0
    last = len(curve) - 1
    if mv >= curve[last]:
        return 100
    i = 1
    while curve[i] < mv:
        i += 1
    lo = curve[i - 1]
    return 5 * (i - 1) + 5 * (mv - lo) // (curve[i] - lo)

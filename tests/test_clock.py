"""Clock-offset estimates correct timestamps only where the offset is larger than its error."""
from rram_lsm.stream.clock import OffsetEstimate

US, MS = 1_000, 1_000_000


def test_same_host_with_an_asymmetric_wait_is_not_corrected():
    """One host (true offset 0): the ping waited 600 µs before the peer answered, so the
    exchange suggests +275 µs, but that is inside its ±325 µs bound: no correction."""
    est = OffsetEstimate()
    est.add(t1=0, t2=600 * US, t3=600 * US, t4=650 * US)
    assert est.offset_ns == 275 * US and est.uncertainty_ns == 325 * US
    assert est.significant_offset_ns == 0.0


def test_a_real_offset_is_recovered_and_the_shortest_round_trip_wins():
    est = OffsetEstimate()
    est.add(t1=0, t2=250 * MS + 900 * US, t3=250 * MS + 900 * US, t4=1_000 * US)  # slow exchange
    est.add(t1=10 * MS, t2=260 * MS + 60 * US, t3=260 * MS + 60 * US, t4=10 * MS + 120 * US)
    assert est.uncertainty_ns == 60 * US
    assert abs(est.significant_offset_ns - 250 * MS) <= est.uncertainty_ns
    assert OffsetEstimate().significant_offset_ns == 0.0  # unmeasured: no correction

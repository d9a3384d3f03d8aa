# GET_EVENTS through the whole Device: the event log resends identical bytes and says
# what is gone for good (run by fwtest_backfill_device, with a 12-packet log).
import struct

from insolefw import protocol as P
from insolefw.settings import CUE_FPA_BAND
from cue_device_harness import (_command, _cues, _packets, _replay, _send, _settings, _steps,
                                device)


def test_get_events_resends_identical_bytes_and_reports_what_is_gone():
    _send(P.T_SETTINGS, _settings(cue_mode=CUE_FPA_BAND, fpa_target_cdeg=0,
                                  fpa_half_width_cdeg=100))
    _packets()
    first_step = device().builder.next_seq(P.T_STEP)
    first_cue = device().builder.next_seq(P.T_CUE)
    packets = _replay(12, [1500] * 20)  # every step out of band: a STEP and a CUE each
    sent = [p for p in packets if p[1] in (P.T_STEP, P.T_CUE)]
    n_steps = len([p for p in sent if p[1] == P.T_STEP])
    assert n_steps >= 10 and len(sent) > 12
    held = sent[-12:]  # the log keeps the 12 newest event packets
    for ptype, first in ((P.T_STEP, first_step), (P.T_CUE, first_cue)):
        mine = [p for p in sent if p[1] == ptype]
        answer = _command(P.CMD_GET_EVENTS, struct.pack("<BBHH", ptype, 0, first, 100))
        resent, end = answer[:-1], answer[-1]
        assert resent == [p for p in held if p[1] == ptype]
        assert end[1] == P.T_BACKFILL_END
        (etype, _, ref_seq, from_seq, count, n_resent, lost_from, lost_count,
         next_seq) = struct.unpack_from("<BBHHHHHHH", end, P.HEADER_LEN)
        assert (etype, ref_seq, from_seq, count) == (ptype, 7, first, 100)
        assert n_resent == len(resent)
        assert (lost_from, lost_count) == (first, len(mine) - len(resent))
        assert next_seq == (first + len(mine)) & 0xFFFF
        # Resent packets are the originals: same seq and time as when first sent.
        if resent:
            assert resent[-1] == mine[-1]
    # Refused requests keep the device answering.
    for args, detail in ((struct.pack("<BBHH", P.T_STATUS, 0, 0, 1), 2),
                         (struct.pack("<BBHH", P.T_STEP, 1, 0, 1), 3),
                         (struct.pack("<BBHH", P.T_STEP, 0, 0, 0), 6)):
        error = _command(P.CMD_GET_EVENTS, args)[0]
        assert error[1] == P.T_ERROR and error[12] == P.E_BAD_VALUE and error[13] == detail
    # Samples are kept only where the board has a sample log (none at the test heap).
    error = _command(P.CMD_GET_EVENTS, struct.pack("<BBHH", P.T_SAMPLES, 0, 0, 1))[0]
    assert error[1] == P.T_ERROR and error[12] == P.E_BAD_STATE

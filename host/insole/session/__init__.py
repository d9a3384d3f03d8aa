"""Both feet live: the session that streams, summarises and records every packet
(:mod:`~insole.session.live`), and its terminal view (:mod:`~insole.session.terminal`)."""

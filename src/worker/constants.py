"""The worker's fixed timings and names (tunable ones are in core.settings.Settings)."""

RECORD_EVERY_S = 0.5  # progress + heartbeat written, and control (cancel/pause) noticed, this often
STOP_GRACE_S = 3.0  # after a cancel or pause is noticed, the run may wind down this long; then it is interrupted
CAP_WAIT_S = 2.0  # at the global running-jobs cap, a job waits this long before trying to claim again
CLAIM_LOCK = "rowloom.claim"  # MySQL's named lock that serialises claims (the running-jobs cap)
CLAIM_LOCK_WAIT_S = 5  # a claim waits this long for it (claims hold it for milliseconds), then tries again later
POLL_DELAY_S = 0.2  # an arq worker with room looks for offered jobs this often
REQUEUE_BATCH = 500  # jobs the reaper re-offers per sweep
JOB_TIMEOUT_S = 30 * 24 * 3600  # arq's per-job timeout: a job may run for weeks; leases, not arq, guard it
MAX_CLAIM_TRIES = 1_000_000  # arq tries: each wait at the cap counts as one
TRACER = "rowloom.worker"

"""Live A/B: clinicians chat with versions behind the gateway (deploy/gateway.py).

serve     starting the gateway with its recorder on the store
recorder  the gateway's exchanges and feedback, written to and read from the store
report    per-arm rates, latencies and intervals clustered by clinician
export    thumbs and corrections as KTO, SFT and DPO data
chat      the clinicians' chat page
"""

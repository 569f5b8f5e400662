"""What FishLeg knows of the curvature: Q(λ) ≈ (F + γI)⁻¹ and how λ is learnt (`curvature`), the
exact Fisher products the aux loss needs (`fisher`), the aux batches they run on (`aux_data`),
the probes u the aux loss fits Q along (`probes`), and K-FAC's one-off estimate Q can start
from (`kfac`). Nothing here decides how a step uses Q·g (`fishleg.step`)."""

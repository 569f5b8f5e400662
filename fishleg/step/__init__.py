"""How a step uses Q·g: the step rule (`rules`: momentum or K-FAC's quadratic model), the damping
γ it and the aux loss share (`damping`), a first-order method's step length per block
(`grafting`), the first-order partner for the parameters Q does not suit (`partner`), and
hyperparameters that vary with the step (`schedules`)."""

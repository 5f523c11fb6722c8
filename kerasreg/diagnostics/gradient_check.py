def gradient_check(*a, **k): raise NotImplementedError
class GradientCheckReport: pass

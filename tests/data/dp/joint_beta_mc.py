"""Independent Monte Carlo oracle for the joint-beta ε interval (src/stats/bayes.rs):
FNR ~ Beta(FN+1/2, TP+1/2), FPR ~ Beta(FP+1/2, TN+1/2), ε of each draw by reference/dp.md §3.1
with the anti-diagonal reflection, 4 x 10^7 draws, the 5 % and 95 % quantiles (mean and sd of
four repeats). Run with the reference environment: $REFENV/bin/python tests/data/dp/joint_beta_mc.py

Output (numpy 2.4.6, seed 1):
    487 0 512 1 [0.14382797 6.41565999] [0.00022311 0.00365306]
    900 100 100 900 [2.10949695 2.38795619] [5.88725852e-05 5.66880818e-05]
    990 10 10 990 [4.34624544 5.25540433] [7.93801947e-05 2.28462879e-04]
"""
import numpy as np
rng=np.random.default_rng(1)
def eps(x,y,d=1e-5):
    up = x+y>1
    x2=np.where(up,1-y,x); y2=np.where(up,1-x,y)
    hi=np.maximum(x2,y2); lo=np.minimum(x2,y2)
    num=1-d-hi
    with np.errstate(divide='ignore', invalid='ignore'):
        e=np.where(num<=0,0.0,np.log(num/lo))
    return np.maximum(e,0)
for tp,fn,fp,tn in [(487,0,512,1),(900,100,100,900),(990,10,10,990)]:
    qs=[]
    for rep in range(4):
        n=10_000_000
        x=rng.beta(fn+.5,tp+.5,n); y=rng.beta(fp+.5,tn+.5,n)
        e=eps(x,y)
        qs.append(np.quantile(e,[0.05,0.95]))
    print(tp,fn,fp,tn,np.mean(qs,axis=0),np.std(qs,axis=0))

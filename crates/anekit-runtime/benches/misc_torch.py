#!/usr/bin/env python3
"""PyTorch timings of the shapes in benches/misc.rs (best of >= 10 runs and 0.3 s, 1 and 2
threads), for comparison on the same machine:

    .venv/bin/python crates/anekit-runtime/benches/misc_torch.py
"""
import time, torch
def best(f, runs=10):
    f(); t0=time.time(); b=1e9; n=0
    while n<runs or time.time()-t0<0.3:
        t=time.perf_counter(); f(); b=min(b,time.perf_counter()-t); n+=1
    return b*1e3
for th in (1,2):
    torch.set_num_threads(th)
    res=[]
    for (s,bb,i,h) in [(64,1,256,256),(64,8,256,512),(16,1,64,64)]:
        m=torch.nn.LSTM(i,h); x=torch.randn(s,bb,i)
        g=torch.nn.GRU(i,h)
        with torch.no_grad():
            res.append((f"lstm s{s} b{bb} i{i} h{h}", best(lambda: m(x))))
            res.append((f"gru  s{s} b{bb} i{i} h{h}", best(lambda: g(x))))
    x=torch.randn(1,64,128,128)
    with torch.no_grad():
        res.append(("resize_bilinear", best(lambda: torch.nn.functional.interpolate(x,size=(256,256),mode='bilinear',align_corners=False))))
        res.append(("upsample_nearest", best(lambda: torch.nn.functional.interpolate(x,scale_factor=2,mode='nearest'))))
        grid=torch.rand(1,128,128,2)*2-1
        res.append(("resample", best(lambda: torch.nn.functional.grid_sample(x,grid,mode='bilinear',padding_mode='border',align_corners=False))))
    for n,t in res: print(f"{th} {n:<30} {t:8.3f} ms")

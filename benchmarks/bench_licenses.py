#!/usr/bin/env python3
"""Licences rendered per second per core: the licence PDF with its QR code, and the
cover sheet the rendering job draws with it.

    .venv/bin/python benchmarks/bench_licenses.py -n 2000
    .venv/bin/python benchmarks/bench_licenses.py -n 2000 --processes 2 --json

Each licence is different (holder, number, address, its own signed verify code), so no
cache of the font subset or the QR code helps; the codes are signed before the clock
starts (signing is issuance, not rendering: its cost is printed separately). Only the
drawing is measured — `delivery.documents.render_license` / `render_cover`, pure
functions of the data — not the database round trips of the job.

"Per core" is CPU time (time.process_time) of each rendering process: on a shared,
busy machine wall time says more about the neighbours than about the code. Wall-clock
throughput is printed too. With --processes P, P processes render n/P licences each.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"  # noqa: E501
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红娥玲芬燕鹏辉建国建华"
DISTRICTS = ("西湖区", "上城区", "拱墅区", "滨江区", "萧山区", "余杭区", "临平区", "钱塘区")


def licences(count: int, offset: int = 0) -> list[object]:
    """`count` different licences, signed, as the rendering job gets them."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from delivery import signing
    from delivery.documents import LicenseData
    from delivery.models import License

    key = Ed25519PrivateKey.generate()
    kid = signing.kid_for(key.public_key())
    issued = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    out = []
    for index in range(offset, offset + count):
        name = SURNAMES[index % len(SURNAMES)] + GIVEN[(index * 7) % len(GIVEN)]
        name += GIVEN[(index * 13) % len(GIVEN)] if index % 3 else ""
        district = DISTRICTS[index % len(DISTRICTS)]
        row = License(
            id=f"lic_01JBENCH{index:012d}",
            department="PSB",
            license_no=f"浙公驾 330106-2026-{index:06d}",
            matter_code="driving-licence",
            title="机动车驾驶证",
            holder_name=name,
            fields={"准驾车型": "C1", "住址": f"浙江省杭州市{district}文三路 {index % 500} 号"},
            valid_from=date(2026, 12, 1),
            valid_until=date(2032, 12, 1) + timedelta(days=index % 30),
        )
        code = signing.sign_with(row, kid, key)
        out.append(
            LicenseData(
                license_id=row.id,
                license_no=row.license_no,
                title=row.title,
                department_name="杭州市公安局交通警察支队",
                holder_name=name,
                fields=list(row.fields.items()),
                valid_from=row.valid_from,
                valid_until=row.valid_until,
                issued_at=issued + timedelta(seconds=index),
                verify_url=f"https://onetrip.gov.cn/verify/{code}",
                matter_name="机动车驾驶证申领",
                address={
                    "recipient": name,
                    "phone": f"138{index:08d}",
                    "province": "浙江省",
                    "city": "杭州市",
                    "district": district,
                    "line1": f"文三路 {index % 500} 号 {index % 9 + 1} 幢 {index % 30 + 101} 室",
                    "postal_code": "310012",
                },
            )
        )
    return out


def measure(args: tuple[int, int, bool]) -> dict[str, float]:
    count, offset, with_cover = args
    from delivery.documents import render_cover, render_license
    from onetrip.pdf import barcode_backend, cjk_font_in_use, flate_backend

    data = licences(count, offset)
    render_license(data[0])  # the font is chosen and registered once per process
    render_cover(data[0])
    sizes = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for item in data:
        sizes += len(render_license(item))
        if with_cover:
            sizes += len(render_cover(item))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "count": count,
        "cpu": cpu,
        "wall": wall,
        "bytes": sizes,
        "font": cjk_font_in_use().label,
        "barcodes": barcode_backend(),
        "flate": flate_backend(),
    }


def signing_cost(count: int) -> float:
    """Milliseconds of CPU to sign one code (not part of the rendering figure)."""
    start = time.process_time()
    licences(count)
    return (time.process_time() - start) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--no-cover", action="store_true", help="the licence PDF only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    share = args.count // args.processes
    jobs = [(share, i * share, not args.no_cover) for i in range(args.processes)]
    wall = time.perf_counter()
    if args.processes == 1:
        results = [measure(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            results = pool.map(measure, jobs)
    wall = time.perf_counter() - wall
    count = sum(r["count"] for r in results)
    cpu = sum(r["cpu"] for r in results)
    measured_wall = max(r["wall"] for r in results)
    summary = {
        "licences": count,
        "with_cover": not args.no_cover,
        "processes": args.processes,
        "per_core_per_second": round(count / cpu, 1),
        "cpu_ms_per_licence": round(cpu / count * 1000, 2),
        "wall_per_second": round(count / measured_wall, 1),
        "kb_per_licence": round(sum(r["bytes"] for r in results) / count / 1024, 1),
        "sign_ms_per_code": round(signing_cost(200), 3),
        "font": results[0]["font"],
        "barcodes": results[0]["barcodes"],
        "flate": results[0]["flate"],
        "total_seconds": round(wall, 1),
    }
    if args.json:
        print(json.dumps(summary))
        return
    what = "licence + cover sheet" if summary["with_cover"] else "licence only"
    print(
        f"| {what} | {count} | {args.processes} | {summary['per_core_per_second']} / s per core "
        f"({summary['cpu_ms_per_licence']} ms CPU each) | {summary['wall_per_second']} / s wall "
        f"| {summary['kb_per_licence']} KB | sign {summary['sign_ms_per_code']} ms "
        f"| {summary['barcodes']}, {summary['flate']} |"
    )


if __name__ == "__main__":
    main()

"""The rules classifier on English, Russian and Chinese lines, hard negatives, use context, and the
declared-code mismatch (evasion) cases the foundation issue names."""

from __future__ import annotations

import pytest

from dualuse.rules import RulesClassifier


@pytest.fixture(scope="module")
def rules() -> RulesClassifier:
    return RulesClassifier()


@pytest.mark.parametrize(
    "text, expected",
    [
        # English customs lines, brands and part numbers
        ("DJI MAVIC 3 QUADCOPTER WITH RC", "uav"),
        ("STM32F103C8T6", "integrated_circuits"),
        ("XILINX XC7Z020-1CLG400C FPGA 50 PCS", "integrated_circuits"),
        ("BAOFENG UV-5R WALKIE TALKIE 2PCS", "radio_comms"),
        ("u-blox NEO-M8N GPS MODULE", "navigation"),
        ("DOUBLE CAB PICKUP 4X4 DIESEL 2.4L", "trucks_vehicles"),
        ("INERTIAL NAVIGATION SYSTEM WITH FIBRE OPTIC GYRO", "navigation"),
        ("HIKMICRO THERMAL MONOCULAR 384X288", "optics_thermal"),
        ("RIGOL DS1054Z DIGITAL OSCILLOSCOPE 50MHZ", "fab_and_test_equipment"),
        ("CNC VERTICAL MACHINING CENTER VMC850 FANUC", "machine_tools"),
        ("BALL BEARING 6205-2RS SKF", "bearings"),
        ("SANY SY215C CRAWLER EXCAVATOR USED", "earthmoving"),
        ("SINOTRUK HOWO 6X4 DUMP TRUCK 371HP", "trucks_vehicles"),
        ("LITHIUM ION BATTERY CELL 18650 3.7V 2600MAH", "batteries"),
        ("KEVLAR 49 ARAMID FILAMENT YARN 1580 DTEX", "aramid_fibre"),
        ("CARBON FIBER TOW T700 12K", "composites"),
        ("FAST BALLISTIC HELMET NIJ IIIA", "helmets"),
        ("PLATE CARRIER WITH LEVEL IV BALLISTIC PLATES", "body_armour"),
        ("SMOKELESS POWDER FOR RELOADING 1 LB", "energetics"),
        ("GERMANIUM INGOT 5N 99.999%", "critical_minerals"),
        ("BARE COPPER WIRE 2.5MM ON SPOOLS", "copper_wire"),
        ("HUNTING RIFLE .308 WIN BOLT ACTION", "arms_ammunition"),
        ("LAPTOP LENOVO THINKPAD T14 16GB RAM", "computers"),
        ("IRF3205 MOSFET TO-220 1000PCS", "electronic_components"),
        ("TURBOJET ENGINE JETCAT P300", "aerospace"),
        # Russian customs phrasing
        ("НИТЬ АРАМИДНАЯ", "aramid_fibre"),
        ("КВАДРОКОПТЕР С КАМЕРОЙ НЕ ВОЕННОГО НАЗНАЧЕНИЯ", "uav"),
        ("КВAДРОКОПТЕР DJI", "uav"),  # Latin 'A' inside a Cyrillic word
        ("ПОДШИПНИК ШАРИКОВЫЙ 6205-2RS SKF 100 ШТ", "bearings"),
        ("ЭКСКАВАТОР ГУСЕНИЧНЫЙ КОМАТСУ PC200-8", "earthmoving"),
        ("СТАНОК ТОКАРНЫЙ С ЧПУ", "machine_tools"),
        ("БРОНЕЖИЛЕТ КЛАСС ЗАЩИТЫ БР4", "body_armour"),
        ("ПРОВОЛОКА МЕДНАЯ НЕИЗОЛИРОВАННАЯ", "copper_wire"),
        ("МИКРОСХЕМЫ ИНТЕГРАЛЬНЫЕ ДЛЯ ГРАЖДАНСКОГО ПРИМЕНЕНИЯ", "integrated_circuits"),
        # Chinese trade wording
        ("挖掘机 履带式", "earthmoving"),
        ("品名：无人机 型号：MAVIC 3", "uav"),
        ("芳纶长丝 1100DTEX", "aramid_fibre"),
        ("热成像瞄准镜", "optics_thermal"),
        ("锂离子电池 18650", "batteries"),
        ("碳纤维布 3K", "composites"),
        ("战术头盔 防弹", "helmets"),
    ],
)
def test_categories_in_three_languages(rules, text, expected):
    proba = rules.predict_proba([text])[0]
    assert rules.labels[int(proba.argmax())] == expected, rules.evidence(text).hits


@pytest.mark.parametrize(
    "text",
    [
        "CERAMIC FLOOR TILES 600X600",
        "MEN'S COTTON T-SHIRT",
        "TOY EXCAVATOR FOR KIDS DIE CAST",  # hard negative vetoes earthmoving
        "COPPER SCRAP BARE BRIGHT",  # scrap, not wire
        "ENAMELLED COPPER WIRE 0.5MM",  # insulated winding wire is 8544
        "POTATO CHIPS 150G",
        "GLUE GUN 20W",
        "LEAD ACID BATTERY 12V 7AH",
        "NYLON 6 FILAMENT YARN",
        "LED BULB E27 9W",
        "PASSENGER CAR TOYOTA COROLLA",
        # marketplace words that are not the cue they look like (taxonomy 2026.11.2)
        "INS STYLE PAPER STICKERS 40PCS",  # "ins" is not an inertial navigation system
        "TELESCOPIC MAGNETIC PICKUP TOOL 8LB",  # nor a pickup truck
        "WIRELESS BIKE COMPUTER SPEEDOMETER",
        "STAINLESS STEEL JUMP RINGS CONNECTORS FOR JEWELRY MAKING 200PCS",
        "PADDED GUN BAG 120CM WITH SHOULDER STRAP",
        # taxonomy 2026.12.1
        "STAINLESS STEEL PENDANT CONNECTORS FOR NECKLACE 20PCS",
        "Gold Filigree Charm Connectors 30pcs",
        "laptop stickers pack 50pcs vinyl decals",
        "OPTOMETRY TRIAL LENS SET 266 PCS",
        "ЧИПСЫ КАРТОФЕЛЬНЫЕ",
        "ПЛИТКА КЕРАМИЧЕСКАЯ",
        "玩具车 塑料",
        "",
    ],
)
def test_ordinary_goods_and_hard_negatives_are_none(rules, text):
    proba = rules.predict_proba([text])[0]
    assert rules.labels[int(proba.argmax())] == "none", rules.evidence(text).hits


@pytest.mark.parametrize(
    "text, expected",
    [
        ("BATTERY FOR DJI MAVIC 3", "batteries"),
        ("无人机用锂电池 6S 22000MAH", "batteries"),
        ("ЛИТИЕВЫЙ АККУМУЛЯТОР ДЛЯ КВАДРОКОПТЕРА", "batteries"),
        ("FPV DRONE WITH SPARE PROPELLERS", "uav"),
        ("PROPELLERS FOR DJI MINI 4 PRO", "aerospace"),
        ("SMA RF CONNECTOR MALE 50 OHM", "electronic_components"),
        ("TINNED COPPER BRAIDED STRAP 16MM2 GROUNDING", "copper_wire"),
    ],
)
def test_use_context_names_what_the_good_is_for(rules, text, expected):
    proba = rules.predict_proba([text])[0]
    assert rules.labels[int(proba.argmax())] == expected, rules.evidence(text).hits


def test_confidence_grows_with_evidence(rules):
    one = rules.predict_proba(["QUADCOPTER"])[0].max()
    many = rules.predict_proba(["DJI MAVIC 3 QUADCOPTER DRONE UAV"])[0].max()
    nothing = rules.predict_proba(["ASDF QWERTY"])[0]
    assert many > one
    assert rules.labels[int(nothing.argmax())] == "none"


def test_hs_code_decides_when_the_text_says_nothing(rules, taxonomy):
    p = rules.predict_proba(["ITEM 123 ASSORTED"], [taxonomy.category_for_hs("854231")])[0]
    assert rules.labels[int(p.argmax())] == "integrated_circuits"


def test_text_beats_a_contradicting_code(rules, taxonomy):
    p = rules.predict_proba(["QUADCOPTER WITH 4K CAMERA"], [taxonomy.category_for_hs("950300")])[0]
    assert rules.labels[int(p.argmax())] == "uav"


def test_evidence_explains_the_decision(rules):
    ev = rules.evidence("BATTERY FOR DJI MAVIC 3")
    kinds = {(h.category, h.kind, h.context) for h in ev.hits}
    assert ("batteries", "strong", False) in kinds
    assert any(cat == "uav" and ctx for cat, _k, ctx in kinds)
    assert all(h.describe() for h in ev.hits)


@pytest.mark.parametrize(
    "text, code, true_cat",
    [
        ("QUADCOPTER DRONE WITH 4K CAMERA GPS", "9503.00", "uav"),  # drone declared as a toy
        ("BARE COPPER WIRE 2.6MM ON DRUMS", "7404.00", "copper_wire"),  # wire declared as scrap
        ("FPGA XC7Z020-1CLG400C", "8541.29", "integrated_circuits"),  # IC declared as a transistor
        ("BALLISTIC PLATES NIJ LEVEL IV", "3926.90", "body_armour"),  # plates declared as plastics
        ("THERMAL IMAGING RIFLE SCOPE 640X512", "9004.90", "optics_thermal"),  # sight as spectacles
        ("ТЕПЛОВИЗИОННЫЙ ПРИЦЕЛ", "9004900000", "optics_thermal"),
        ("无人机 航拍 4K", "9503", "uav"),
    ],
)
def test_evasion_is_flagged(rules_screener, text, code, true_cat):
    p = rules_screener.predict_one(text, hs_code=code)
    assert p.category == true_cat
    assert p.declared_hs_category != true_cat
    assert p.hs_mismatch is True
    assert "hs_mismatch" in p.flags or p.hs_mismatch


@pytest.mark.parametrize(
    "text, code",
    [
        ("DJI MAVIC 3 QUADCOPTER", "8806.22"),
        ("CERAMIC FLOOR TILES", "6907.21"),
        ("BALL BEARING 6205", "848210"),
    ],
)
def test_agreeing_code_is_not_a_mismatch(rules_screener, text, code):
    assert rules_screener.predict_one(text, hs_code=code).hs_mismatch is False


def test_toy_drone_is_still_a_drone(rules_screener):
    p = rules_screener.predict_one("TOY DRONE WITH HD CAMERA FOLDABLE 4K", hs_code="9503.00")
    assert p.category == "uav" and p.hs_mismatch


def test_long_text_is_fast_enough_to_finish(rules):
    # a pathological 100 kB line must finish (no catastrophic regex); no timing assertion
    text = ("QUADCOPTER 6205-2RS STM32F103 " * 4000)[:100_000]
    assert rules.evidence(text).hits

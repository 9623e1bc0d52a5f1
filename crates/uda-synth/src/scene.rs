//! What a street scene contains: a pinhole camera over a flat street (road, sidewalks, terrain)
//! flanked by building facades or park vegetation, optional walls/fences, and upright objects
//! (cars, persons, poles with signs and lights, trees). Sampled from an RNG; drawn by `render`.
//!
//! Geometry is metric so that sizes follow perspective like in Cityscapes: at depth z a metre
//! spans f/z pixels, and an object standing on the ground at depth z has its foot at row
//! horizon + camera_height·f/z.

use crate::noise::uniform;
use rand::Rng;

pub(crate) type Rgb = [f32; 3];

/// Train ids of the classes the generator draws (Cityscapes order, see `uda_data::classes`).
pub(crate) mod tid {
    pub const ROAD: u8 = 0;
    pub const SIDEWALK: u8 = 1;
    pub const BUILDING: u8 = 2;
    pub const WALL: u8 = 3;
    pub const FENCE: u8 = 4;
    pub const POLE: u8 = 5;
    pub const LIGHT: u8 = 6;
    pub const SIGN: u8 = 7;
    pub const VEGETATION: u8 = 8;
    pub const TERRAIN: u8 = 9;
    pub const SKY: u8 = 10;
    pub const PERSON: u8 = 11;
    pub const CAR: u8 = 13;
}

/// The classes the generator can draw (13 of the 19).
pub const DRAWN_CLASSES: [u8; 13] = [
    tid::ROAD,
    tid::SIDEWALK,
    tid::BUILDING,
    tid::WALL,
    tid::FENCE,
    tid::POLE,
    tid::LIGHT,
    tid::SIGN,
    tid::VEGETATION,
    tid::TERRAIN,
    tid::SKY,
    tid::PERSON,
    tid::CAR,
];

#[derive(Debug, Clone)]
pub(crate) struct Camera {
    /// Row of the horizon (pixels from the top).
    pub horizon: f32,
    /// Column of the vanishing point.
    pub vp_x: f32,
    /// Focal length in pixels.
    pub focal: f32,
    /// Camera height above the street in metres.
    pub height: f32,
}

impl Camera {
    /// Pixels per metre at depth `z`.
    pub fn scale(&self, z: f32) -> f32 {
        self.focal / z
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Block {
    /// Depth where this block ends (it starts where the previous one ends).
    pub z_end: f32,
    pub height: f32,
    pub color: Rgb,
    pub glass: Rgb,
    /// Window spacing along the street and vertically, and window size, in metres.
    pub win_dz: f32,
    pub win_dy: f32,
    pub win_w: f32,
    pub win_h: f32,
}

#[derive(Debug, Clone)]
pub(crate) enum Backdrop {
    Buildings(Vec<Block>),
    /// A band of vegetation whose top height (metres) varies along the street.
    Park {
        top: f32,
        seed: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BarrierKind {
    Wall,
    Fence,
}

/// A wall or fence segment standing at the outer edge of a sidewalk.
#[derive(Debug, Clone)]
pub(crate) struct Barrier {
    pub z0: f32,
    pub z1: f32,
    pub height: f32,
    pub kind: BarrierKind,
    pub color: Rgb,
}

/// One side of the street; distances are lateral metres from the camera.
#[derive(Debug, Clone)]
pub(crate) struct Side {
    pub road: f32,
    pub sidewalk: f32,
    pub terrain: f32,
    pub backdrop: Backdrop,
    pub barriers: Vec<Barrier>,
    /// Brightness of this side's facades (sun on one side, shade on the other).
    pub shade: f32,
}

impl Side {
    pub fn barrier_x(&self) -> f32 {
        self.road + self.sidewalk
    }
    pub fn facade_x(&self) -> f32 {
        self.road + self.sidewalk + self.terrain
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignShape {
    Disc,
    Triangle,
    Panel,
}

#[derive(Debug, Clone)]
pub(crate) enum Thing {
    Car {
        body: Rgb,
    },
    Person {
        shirt: Rgb,
        trousers: Rgb,
        skin: Rgb,
        height: f32,
        stride: f32,
    },
    Pole {
        height: f32,
        width: f32,
        color: Rgb,
        sign: Option<(SignShape, Rgb, f32)>,
        light: Option<(f32, usize)>,
    },
    Tree {
        trunk: f32,
        crowns: Vec<(f32, f32, f32)>,
        color: Rgb,
        seed: u64,
    },
}

/// An upright object standing on the street at lateral `x` and depth `z` (metres).
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub x: f32,
    pub z: f32,
    pub thing: Thing,
}

#[derive(Debug, Clone)]
pub(crate) struct Scene {
    pub width: usize,
    pub height: usize,
    pub cam: Camera,
    pub left: Side,
    pub right: Side,
    /// Sorted far to near (painter's order).
    pub objects: Vec<Object>,
    pub sky_top: Rgb,
    pub sky_horizon: Rgb,
    pub clouds: f32,
    pub road: Rgb,
    pub sidewalk: Rgb,
    pub terrain: Rgb,
    pub vegetation: Rgb,
    /// Lateral position of the dashed centre line, if painted.
    pub centre_line: Option<f32>,
    /// Seed of the per-pixel textures.
    pub tex_seed: u64,
    /// Rows of ego-vehicle hood at the bottom (label id 1, not evaluated).
    pub ego_rows: usize,
}

fn jitter(rng: &mut impl Rng, c: Rgb, amount: f32) -> Rgb {
    let k = uniform(rng, 1.0 - amount, 1.0 + amount);
    c.map(|v| (v * k * uniform(rng, 1.0 - amount / 2.0, 1.0 + amount / 2.0)).clamp(0.0, 1.0))
}

fn pick(rng: &mut impl Rng, colors: &[Rgb]) -> Rgb {
    colors[rng.random_range(0..colors.len())]
}

/// A colour from a list, jittered.
fn pick_jitter(rng: &mut impl Rng, colors: &[Rgb], amount: f32) -> Rgb {
    let c = pick(rng, colors);
    jitter(rng, c, amount)
}

const FACADES: [Rgb; 6] = [
    [0.45, 0.38, 0.28],
    [0.25, 0.25, 0.27],
    [0.33, 0.12, 0.08],
    [0.58, 0.56, 0.52],
    [0.20, 0.12, 0.07],
    [0.40, 0.42, 0.45],
];
const CAR_PAINT: [Rgb; 8] = [
    [0.02, 0.02, 0.02],
    [0.70, 0.70, 0.70],
    [0.35, 0.36, 0.38],
    [0.45, 0.03, 0.02],
    [0.03, 0.08, 0.35],
    [0.60, 0.60, 0.55],
    [0.10, 0.25, 0.10],
    [0.55, 0.35, 0.05],
];
const CLOTHES: [Rgb; 7] = [
    [0.50, 0.05, 0.05],
    [0.05, 0.12, 0.45],
    [0.60, 0.60, 0.60],
    [0.03, 0.03, 0.03],
    [0.55, 0.45, 0.05],
    [0.10, 0.35, 0.15],
    [0.40, 0.20, 0.40],
];

impl Scene {
    /// Samples a scene; `layout_shift` (0..1) moves the target's layout statistics and
    /// `thing_depth_scale` (0.3..=1) brings persons and poles nearer (`SynthParams`).
    pub fn sample(
        rng: &mut impl Rng,
        width: usize,
        height: usize,
        layout_shift: f32,
        thing_depth_scale: f32,
    ) -> Self {
        let (w, h) = (width as f32, height as f32);
        let ls = layout_shift;
        let cam = Camera {
            horizon: h * uniform(rng, 0.38 - 0.06 * ls, 0.50 - 0.06 * ls),
            vp_x: w * uniform(rng, 0.38, 0.62),
            focal: w * uniform(rng, 0.50, 0.62),
            height: uniform(rng, 1.3, 1.8),
        };
        let z_bottom = cam.focal * cam.height / (h - cam.horizon).max(1.0);
        let park_p = 0.3 - 0.15 * ls;
        let (shade_l, shade_r) = (uniform(rng, 0.55, 0.85), uniform(rng, 0.80, 1.05));
        let left = Self::side(rng, ls, park_p, z_bottom, shade_l);
        let right = Self::side(rng, ls, park_p, z_bottom, shade_r);
        let mut objects = Vec::new();
        let n_cars = rng.random_range(1..=5) + (3.0 * ls * rng.random::<f32>()).round() as usize;
        for _ in 0..n_cars {
            let parked = rng.random_bool(0.35);
            let x = if parked {
                let side_left = rng.random_bool(0.5);
                let s = if side_left { &left } else { &right };
                let x = s.road - 1.2;
                if side_left { -x } else { x }
            } else {
                uniform(rng, -left.road + 1.1, right.road - 1.1)
            };
            let z = uniform(rng, z_bottom * 1.25, 70.0);
            objects.push(Object {
                x,
                z,
                thing: Thing::Car {
                    body: pick_jitter(rng, &CAR_PAINT, 0.15),
                },
            });
        }
        let n_persons = rng.random_range(1..=7);
        for _ in 0..n_persons {
            let s = if rng.random_bool(0.5) { -1.0 } else { 1.0 };
            let side = if s < 0.0 { &left } else { &right };
            let x = s * (side.road + uniform(rng, 0.3, (side.sidewalk - 0.3).max(0.35)));
            let skin = pick(
                rng,
                &[[0.55, 0.36, 0.26], [0.35, 0.20, 0.12], [0.16, 0.09, 0.05]],
            );
            let thing = Thing::Person {
                shirt: pick_jitter(rng, &CLOTHES, 0.2),
                trousers: pick_jitter(rng, &CLOTHES[1..4], 0.2),
                skin,
                height: uniform(rng, 1.55, 1.95),
                stride: uniform(rng, 0.0, 0.12),
            };
            objects.push(Object {
                x,
                z: uniform(
                    rng,
                    z_bottom * 1.3,
                    (30.0 * thing_depth_scale).max(z_bottom * 1.4),
                ),
                thing,
            });
        }
        let n_poles = rng.random_range(2..=5);
        for _ in 0..n_poles {
            let s = if rng.random_bool(0.5) { -1.0 } else { 1.0 };
            let side = if s < 0.0 { &left } else { &right };
            let x = s * (side.road + 0.45);
            let sign = rng.random_bool(0.6).then(|| {
                let shape = [SignShape::Disc, SignShape::Triangle, SignShape::Panel]
                    [rng.random_range(0..3)];
                let face = pick(
                    rng,
                    &[
                        [0.55, 0.04, 0.03],
                        [0.03, 0.10, 0.50],
                        [0.70, 0.50, 0.02],
                        [0.05, 0.35, 0.12],
                    ],
                );
                (shape, face, uniform(rng, 2.3, 3.2))
            });
            let light = (sign.is_none() || rng.random_bool(0.35))
                .then(|| (uniform(rng, 3.3, 4.6), rng.random_range(0..3)));
            let thing = Thing::Pole {
                height: uniform(rng, 4.0, 7.0),
                width: uniform(rng, 0.2, 0.32),
                color: jitter(rng, [0.16, 0.16, 0.17], 0.3),
                sign,
                light,
            };
            objects.push(Object {
                x,
                z: uniform(
                    rng,
                    z_bottom * 1.6,
                    (32.0 * thing_depth_scale).max(z_bottom * 1.7),
                ),
                thing,
            });
        }
        let n_trees = rng.random_range(0..=3)
            + usize::from(matches!(left.backdrop, Backdrop::Park { .. })) * 2
            + usize::from(matches!(right.backdrop, Backdrop::Park { .. })) * 2;
        let n_trees = ((n_trees as f32) * (1.0 - 0.4 * ls)).round() as usize;
        for _ in 0..n_trees {
            let s = if rng.random_bool(0.5) { -1.0 } else { 1.0 };
            let side = if s < 0.0 { &left } else { &right };
            let x = s * (side.barrier_x() + uniform(rng, -0.6, side.terrain.max(0.2)));
            let n = rng.random_range(2..=4);
            let r = uniform(rng, 1.4, 2.8);
            let trunk = uniform(rng, 2.0, 3.5);
            let crowns = (0..n)
                .map(|_| {
                    (
                        uniform(rng, -0.7, 0.7) * r,
                        trunk + r * uniform(rng, 0.6, 1.4),
                        r * uniform(rng, 0.6, 1.0),
                    )
                })
                .collect();
            let thing = Thing::Tree {
                trunk,
                crowns,
                color: jitter(rng, [0.05, 0.13, 0.03], 0.25),
                seed: rng.random(),
            };
            objects.push(Object {
                x,
                z: uniform(rng, z_bottom * 2.0, 80.0),
                thing,
            });
        }
        objects.sort_by(|a, b| b.z.total_cmp(&a.z));
        let ego_rows = if rng.random_bool(0.5) {
            (h * uniform(rng, 0.03, 0.08)) as usize
        } else {
            0
        };
        Self {
            width,
            height,
            cam,
            left,
            right,
            objects,
            sky_top: jitter(rng, [0.16, 0.30, 0.65], 0.2),
            sky_horizon: jitter(rng, [0.60, 0.68, 0.78], 0.1),
            clouds: uniform(rng, 0.0, 0.6),
            road: jitter(rng, [0.085, 0.085, 0.095], 0.2),
            sidewalk: jitter(rng, [0.26, 0.22, 0.22], 0.15),
            terrain: jitter(rng, [0.22, 0.24, 0.07], 0.2),
            vegetation: jitter(rng, [0.05, 0.14, 0.03], 0.2),
            centre_line: rng.random_bool(0.7).then(|| uniform(rng, -0.5, 0.5)),
            tex_seed: rng.random(),
            ego_rows,
        }
    }

    fn side(rng: &mut impl Rng, ls: f32, park_p: f32, z_bottom: f32, shade: f32) -> Side {
        let park = rng.random_bool(park_p as f64);
        let road = uniform(rng, 2.5, 5.5) + 1.5 * ls;
        let sidewalk = uniform(rng, 1.8, 4.5);
        let terrain = if park {
            uniform(rng, 2.0, 8.0)
        } else if rng.random_bool(0.35) {
            uniform(rng, 0.8, 2.5)
        } else {
            0.0
        };
        let backdrop = if park {
            Backdrop::Park {
                top: uniform(rng, 3.5, 9.0),
                seed: rng.random(),
            }
        } else {
            let mut blocks = Vec::new();
            let mut z = 0.0;
            while z < 400.0 {
                z += uniform(rng, 8.0, 30.0);
                let glass = jitter(rng, [0.05, 0.06, 0.08], 0.3);
                blocks.push(Block {
                    z_end: z,
                    height: uniform(rng, 7.0, 28.0) * (1.0 - 0.25 * ls),
                    color: pick_jitter(rng, &FACADES, 0.15),
                    glass,
                    win_dz: uniform(rng, 2.5, 4.0),
                    win_dy: uniform(rng, 2.8, 3.6),
                    win_w: uniform(rng, 0.35, 0.6),
                    win_h: uniform(rng, 0.35, 0.55),
                });
            }
            Backdrop::Buildings(blocks)
        };
        let mut barriers = Vec::new();
        if rng.random_bool(0.45) {
            let kind = if rng.random_bool(0.5) {
                BarrierKind::Wall
            } else {
                BarrierKind::Fence
            };
            let z0 = uniform(rng, z_bottom * 0.8, 35.0);
            let (height, color) = match kind {
                BarrierKind::Wall => (uniform(rng, 1.0, 2.6), jitter(rng, [0.30, 0.29, 0.27], 0.2)),
                BarrierKind::Fence => (
                    uniform(rng, 1.0, 2.0),
                    jitter(rng, [0.22, 0.19, 0.16], 0.25),
                ),
            };
            barriers.push(Barrier {
                z0,
                z1: z0 + uniform(rng, 6.0, 40.0),
                height,
                kind,
                color,
            });
        }
        Side {
            road,
            sidewalk,
            terrain,
            backdrop,
            barriers,
            shade,
        }
    }
}

impl Backdrop {
    /// Top height (metres) at depth `z`, with the block there (if buildings); `None` past the last block.
    pub fn at(&self, z: f32) -> Option<(f32, Option<&Block>)> {
        match self {
            Backdrop::Buildings(blocks) => {
                let i = blocks.partition_point(|b| b.z_end < z);
                blocks.get(i).map(|b| (b.height, Some(b)))
            }
            Backdrop::Park { top, seed } => {
                let wobble = crate::noise::value_noise(*seed, z / 5.0, 0.5) - 0.5;
                Some((top * (1.0 + 0.5 * wobble), None))
            }
        }
    }
}

"""The world's vocabulary: a contract shared by the renderer, the captioner, the judge and the prompts.

Every name here is canonical (what specs and claims store); the captioner and the prompt grammar map
synonyms onto these names. Geometry is in world units: the visible frame at camera rest is the unit
square, x to the right, y downwards (image convention), so "up" means decreasing y.
"""

from __future__ import annotations

from enum import StrEnum

# Object colors, always saturated (ARCHITECTURE.md); the judge classifies pixels against these.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 40),
    "green": (40, 180, 70),
    "cyan": (40, 200, 220),
    "blue": (40, 80, 220),
    "purple": (150, 60, 200),
    "pink": (240, 120, 180),
    "white": (245, 245, 245),
}


class Shape(StrEnum):
    CIRCLE = "circle"
    SQUARE = "square"
    TRIANGLE = "triangle"
    STAR = "star"
    RING = "ring"
    PERSON = "person"  # the articulated stick figure


# Bounding radius of each size, as a fraction of the frame height. Small is still ~12 px across at
# 64x64 so that the judge can tell a star from a circle at the base resolution.
SIZES: dict[str, float] = {"small": 0.095, "medium": 0.135, "large": 0.185}

# Textured, desaturated backgrounds whose pixels stay far from every object color (and darker than
# white) so that palette classification separates objects from the ground.
BACKGROUNDS: tuple[str, ...] = ("checkerboard", "dunes", "night", "grass", "brick", "clouds")


class Motion(StrEnum):
    STILL = "still"
    MOVE = "move"  # straight line; needs a Direction
    BOUNCE = "bounce"  # under gravity, elastic off the floor (and walls if it also drifts)
    FALL = "fall"  # drops under gravity and comes to rest on the floor
    ROTATE = "rotate"  # spins in place; needs a Spin
    GROW = "grow"
    SHRINK = "shrink"
    ORBIT = "orbit"  # circles around a point
    ZIGZAG = "zigzag"  # travels left or right along a zigzag; needs LEFT or RIGHT
    WALK = "walk"  # stick figure only; needs LEFT or RIGHT
    WAVE = "wave"  # stick figure only
    JUMP = "jump"  # stick figure only


class Direction(StrEnum):
    LEFT = "left"
    RIGHT = "right"
    UP = "up"
    DOWN = "down"
    UP_LEFT = "up_left"
    UP_RIGHT = "up_right"
    DOWN_LEFT = "down_left"
    DOWN_RIGHT = "down_right"


class Spin(StrEnum):
    CLOCKWISE = "clockwise"
    COUNTERCLOCKWISE = "counterclockwise"


# Unit vectors in world coordinates (y down) for each direction.
DIRECTION_VECTORS: dict[Direction, tuple[float, float]] = {
    Direction.LEFT: (-1.0, 0.0),
    Direction.RIGHT: (1.0, 0.0),
    Direction.UP: (0.0, -1.0),
    Direction.DOWN: (0.0, 1.0),
    Direction.UP_LEFT: (-0.7071, -0.7071),
    Direction.UP_RIGHT: (0.7071, -0.7071),
    Direction.DOWN_LEFT: (-0.7071, 0.7071),
    Direction.DOWN_RIGHT: (0.7071, 0.7071),
}

# Which motions need which qualifier, and which shapes may perform them.
NEEDS_DIRECTION = {Motion.MOVE, Motion.ZIGZAG, Motion.WALK}
HORIZONTAL_ONLY = {Motion.ZIGZAG, Motion.WALK}
NEEDS_SPIN = {Motion.ROTATE}
PERSON_ONLY = {Motion.WALK, Motion.WAVE, Motion.JUMP}
# A spinning circle or ring looks exactly like a still one; a spinning person is not in the world.
NO_ROTATE = {Shape.CIRCLE, Shape.RING, Shape.PERSON}


class Camera(StrEnum):
    """Camera moves. A pan left turns the camera left, so the scene slides right across the frame."""

    STATIC = "static"
    PAN_LEFT = "pan_left"
    PAN_RIGHT = "pan_right"
    TILT_UP = "tilt_up"
    TILT_DOWN = "tilt_down"
    ZOOM_IN = "zoom_in"
    ZOOM_OUT = "zoom_out"
    ORBIT = "orbit"  # the scene rotates about the frame centre


class Relation(StrEnum):
    LEFT_OF = "left_of"
    RIGHT_OF = "right_of"
    ABOVE = "above"
    BELOW = "below"
    NEXT_TO = "next_to"


# Magnitudes shared by the renderer (which produces them) and the judge (which thresholds them).
MOVE_SPEED = 0.22  # world units per second for MOVE, ZIGZAG and WALK
GRAVITY = 2.2  # world units per second^2
SPIN_RATE = 3.0  # radians per second for ROTATE (about 170 degrees a second)
GROW_FACTOR = 1.7  # GROW scales the radius by this over its segment; SHRINK by its inverse
ORBIT_RADIUS = 0.16  # world units
ORBIT_RATE = 3.14159  # radians per second (half a turn a second)
CAMERA_PAN_SPEED = 0.2  # world units per second for pans and tilts
CAMERA_ZOOM_RATE = 0.3  # log-scale per second (zoom in: x1.82 over 2 s)
CAMERA_ORBIT_RATE = 0.35  # radians per second (about 40 degrees over 2 s)

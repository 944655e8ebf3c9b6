"""The stack as ROS 2 nodes (rclpy), plus the ZeroMQ inference server and its light client."""
